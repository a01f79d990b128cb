"""Configuration loading: valid files, environment overrides, and every error naming its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from keeper.config import load_config, render_toml
from keeper.errors import ConfigError

ADDR = "0x" + "11" * 20
VALID = {
    "chain": {"chain_id": 31337, "rpc_urls": ["http://127.0.0.1:8545"]},
    "contracts": {
        k: ADDR for k in ("vault_manager", "multicall", "gmx_vault", "glp_manager", "reward_router", "pool", "glp")
    },
}


def write(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "keeper.toml"
    path.write_text(render_toml(data))
    return path


def test_valid_config_loads_and_checksums_addresses(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, VALID))
    assert cfg.chain.chain_id == 31337
    assert cfg.contracts.pool == "0x1111111111111111111111111111111111111111"
    assert cfg.hedged_assets == ["WETH", "WBTC"]
    assert cfg.keeper_address() == "0x" + "00" * 20


def test_environment_overrides_nested_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEPER_CHAIN__CHAIN_ID", "42161")
    assert load_config(write(tmp_path, VALID)).chain.chain_id == 42161


def test_every_bad_field_is_named(tmp_path: Path) -> None:
    bad = {
        "chain": {"chain_id": -1, "rpc_urls": ["ftp://x"]},
        "contracts": {**VALID["contracts"], "pool": "0x1234"},  # type: ignore[dict-item]
        "surprise": 1,
    }
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, bad))
    text = str(info.value)
    assert "chain.chain_id: Input should be greater than 0" in text
    assert "chain.rpc_urls.0: must be an http(s):// or ws(s):// URL" in text
    assert "contracts.pool: must be a 0x-prefixed 20-byte hex address" in text
    assert "surprise: unknown setting" in text


def test_missing_section_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"contracts: Field required"):
        load_config(write(tmp_path, {"chain": VALID["chain"]}))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[chain\nchain_id = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_secret_key_never_appears_in_repr_or_errors(tmp_path: Path) -> None:
    key = "0x" + "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"[:64]
    data = {**VALID, "signer": {"kind": "raw", "key": key}}
    cfg = load_config(write(tmp_path, data))
    assert key not in repr(cfg)
    assert key not in str(cfg.model_dump())
    assert cfg.keeper_address() == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    bad = {**data, "signer": {"kind": "raw", "key": key, "bogus": 1}}
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, bad))
    assert key not in str(info.value)


def test_shipped_example_configs_are_valid() -> None:
    root = Path(__file__).resolve().parents[1] / "config"
    devnet = load_config(root / "devnet.example.toml")
    assert devnet.chain.chain_id == 31337 and devnet.signer.kind == "raw"
    template = load_config(root / "mainnet.template.toml")
    assert template.chain.chain_id == 42161 and template.signer.kind == "keystore"
    assert template.oracle.assets["WETH"].heartbeat_seconds == 86400
    assert [v.name for v in template.vaults] == ["usdc", "eth"]
    from keeper.daemon.app import rules_by_vault

    rules = rules_by_vault(template, [0, 1, 2])
    assert rules[1].drift_policy == "bands" and rules[0].drift_policy == "fixed" and rules[2].drift_bps == 500


def lyf_position(**over: object) -> dict[str, object]:
    base: dict[str, object] = {"name": "avax-usdc", **{k: ADDR for k in ("position", "pair", "volatile", "stable",
                                                                           "feed")}}
    return {**base, **over}


def test_lyf_positions_load_with_planner_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, {**VALID, "lyf": {"positions": [lyf_position(target_leverage_bps=25_000)]}}))
    (p,) = cfg.lyf.positions
    assert p.name == "avax-usdc" and p.target_leverage_bps == 25_000 and p.price_move_bps == 1_000
    assert p.position == "0x1111111111111111111111111111111111111111"
    assert load_config(write(tmp_path, VALID)).lyf.positions == []  # absent: GLP vaults only


def test_bad_lyf_fields_are_named(tmp_path: Path) -> None:
    bad = lyf_position(name="Not A Label!", pair="0x12", target_leverage_bps=9_000, surprise=1)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, {**VALID, "lyf": {"positions": [bad]}}))
    text = str(info.value)
    assert "lyf.positions.0.name: String should match pattern" in text
    assert "lyf.positions.0.pair: must be a 0x-prefixed 20-byte hex address" in text
    assert "lyf.positions.0.target_leverage_bps: Input should be greater than 10000" in text
    assert "lyf.positions.0.surprise: unknown setting" in text


def test_lyf_rules_beyond_the_planner_ranges_are_named_at_load(tmp_path: Path) -> None:
    bad = lyf_position(target_leverage_bps=1_000_001, deadline_seconds=10 * 365 * 86_400 + 1)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, {**VALID, "lyf": {"positions": [bad]}}))
    text = str(info.value)
    assert "lyf.positions.0.target_leverage_bps: Input should be less than or equal to 1000000" in text
    assert "lyf.positions.0.deadline_seconds: Input should be less than or equal to 315360000" in text


# --- secrets directory, precedence, source errors --------------------------------------------------------------

DEV_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil dev key #1 (devnet only)
DEV_ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
OTHER_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # dev key #2
DB_URL = "postgresql://keeper:s3cret-pw@db.internal:5432/keeper"


def secrets(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text + "\n")  # as `kubectl create secret` / docker secrets write them
    return folder


def test_secrets_dir_loads_the_documented_nested_file_names_as_secret_str(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = secrets(tmp_path, signer__key=DEV_KEY, store__database_url=DB_URL)
    path = write(tmp_path, {**VALID, "signer": {"kind": "raw"}})
    for cfg in (load_config(path, secrets_dir=folder), _with_env(monkeypatch, "KEEPER_SECRETS_DIR", str(folder), path)):
        assert cfg.signer.key is not None and cfg.store.database_url is not None
        assert cfg.signer.key.get_secret_value() == DEV_KEY  # the file's trailing newline is stripped
        assert cfg.store.database_url.get_secret_value() == DB_URL
        assert cfg.keeper_address() == DEV_ADDRESS
        assert DEV_KEY not in repr(cfg) and "s3cret-pw" not in repr(cfg) and "s3cret-pw" not in str(cfg.model_dump())


def _with_env(monkeypatch: pytest.MonkeyPatch, name: str, value: str, path: Path) -> object:
    monkeypatch.setenv(name, value)
    return load_config(path)


def test_environment_beats_secrets_files_which_beat_the_toml_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = secrets(tmp_path, signer__key=DEV_KEY, chain__chain_id="10")
    path = write(tmp_path, {**VALID, "signer": {"kind": "raw", "key": OTHER_KEY}})
    assert load_config(path).chain.chain_id == 31337  # the file alone
    cfg = load_config(path, secrets_dir=folder)
    assert cfg.chain.chain_id == 10 and cfg.keeper_address() == DEV_ADDRESS  # secrets files beat the TOML file
    assert cfg.chain.rpc_urls == ["http://127.0.0.1:8545"]  # a nested file overrides one field, not the table
    monkeypatch.setenv("KEEPER_CHAIN__CHAIN_ID", "20")
    monkeypatch.setenv("KEEPER_SIGNER__KEY", OTHER_KEY)
    cfg = load_config(path, secrets_dir=folder)
    assert cfg.chain.chain_id == 20  # the environment beats the secrets files
    assert cfg.keeper_address() == "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def test_missing_secrets_dir_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"secrets dir .*absent \(KEEPER_SECRETS_DIR\): not found"):
        load_config(write(tmp_path, VALID), secrets_dir=tmp_path / "absent")
    (tmp_path / "plain").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        load_config(write(tmp_path, VALID), secrets_dir=tmp_path / "plain")


def test_environment_value_that_is_not_json_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, VALID)
    monkeypatch.setenv("KEEPER_CHAIN__RPC_URLS", "not-json")
    with pytest.raises(ConfigError, match="environment variable KEEPER_CHAIN__RPC_URLS: not valid JSON") as info:
        load_config(path)
    assert "not-json" not in exception_chain_text(info.value)
    monkeypatch.delenv("KEEPER_CHAIN__RPC_URLS")
    broken = '{"kind": "raw", "key": "' + DEV_KEY + '"'  # a whole table, cut short: the key must not be echoed
    monkeypatch.setenv("KEEPER_SIGNER", broken)
    with pytest.raises(ConfigError, match="environment variable KEEPER_SIGNER: not valid JSON") as info:
        load_config(path)
    assert DEV_KEY[2:] not in exception_chain_text(info.value)


def exception_chain_text(exc: BaseException | None) -> str:
    """Everything reachable from an exception (messages, reprs, attributes such as JSONDecodeError.doc)."""
    parts: list[str] = []
    while exc is not None:
        parts += [str(exc), repr(exc), repr(vars(exc))]
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def test_secrets_file_that_is_not_json_names_the_file(tmp_path: Path) -> None:
    folder = secrets(tmp_path, chain__rpc_urls='["http://a"')
    with pytest.raises(ConfigError, match="secrets file chain__rpc_urls: not valid JSON"):
        load_config(write(tmp_path, VALID), secrets_dir=folder)


def test_invalid_value_from_a_variable_or_secrets_file_says_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = secrets(tmp_path, store__lease_seconds="-1")
    monkeypatch.setenv("KEEPER_CHAIN__RPC_URLS", '"http://one-string"')  # JSON, but not a list
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, VALID), secrets_dir=folder)
    text = str(info.value)
    assert "chain.rpc_urls: Input should be a valid list (from environment variable KEEPER_CHAIN__RPC_URLS)" in text
    assert "store.lease_seconds: Input should be greater than 0 (from secrets file store__lease_seconds)" in text


def test_each_signer_kind_names_what_it_needs(tmp_path: Path) -> None:
    cases = {
        "remote": ({"remote_url": "https://signer.internal"}, "signer: kind 'remote' needs address"),
        "keystore": ({"keystore_file": "/k.json"}, "signer: kind 'keystore' needs password_file"),
        "raw": ({}, "signer: kind 'raw' needs key"),
    }
    for kind, (fields, message) in cases.items():
        with pytest.raises(ConfigError, match=message):
            load_config(write(tmp_path, {**VALID, "signer": {"kind": kind, **fields}}))


def keystore(tmp_path: Path, key: str = DEV_KEY, **over: object) -> Path:
    import json

    from eth_account import Account

    data = {**Account.encrypt(key, "pw", kdf="pbkdf2", iterations=2), **over}
    path = tmp_path / "keystore.json"
    path.write_text(json.dumps({k: v for k, v in data.items() if v is not None}))
    return path


def test_keystore_address_comes_from_the_file_without_the_password(tmp_path: Path) -> None:
    signer = {"kind": "keystore", "keystore_file": str(keystore(tmp_path)), "password_file": "/nonexistent"}
    cfg = load_config(write(tmp_path, {**VALID, "signer": signer}))
    assert cfg.keeper_address() == DEV_ADDRESS  # checksummed, from the JSON "address" field (no 0x there)
    agreeing = load_config(write(tmp_path, {**VALID, "signer": {**signer, "address": DEV_ADDRESS.lower()}}))
    assert agreeing.keeper_address() == DEV_ADDRESS
    wrong = load_config(write(tmp_path, {**VALID, "signer": {**signer, "address": ADDR}}))
    with pytest.raises(ConfigError, match=r"signer\.address 0x1{40} does not match"):
        wrong.keeper_address()


def test_unreadable_keystore_address_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    for over, message in (({"address": None}, 'no "address" field'), ({"address": "0x12"}, 'no "address" field')):
        signer = {"kind": "keystore", "keystore_file": str(keystore(tmp_path, **over)), "password_file": "/p"}
        with pytest.raises(ConfigError, match=f"signer.keystore_file .*keystore.json: {message}"):
            load_config(write(tmp_path, {**VALID, "signer": signer})).keeper_address()
    signer = {"kind": "keystore", "keystore_file": str(tmp_path / "gone.json"), "password_file": "/p"}
    with pytest.raises(ConfigError, match=r"gone.json: cannot be read \(FileNotFoundError\)"):
        load_config(write(tmp_path, {**VALID, "signer": signer})).keeper_address()
    (tmp_path / "text.json").write_text("not json")
    signer["keystore_file"] = str(tmp_path / "text.json")
    with pytest.raises(ConfigError, match=r"text\.json: not valid JSON"):
        load_config(write(tmp_path, {**VALID, "signer": signer})).keeper_address()


def test_raw_key_file_address_is_derived_and_a_bad_file_never_echoes_its_content(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(DEV_KEY + "\n")
    cfg = load_config(write(tmp_path, {**VALID, "signer": {"kind": "raw", "key_file": str(tmp_path / "key")}}))
    assert cfg.keeper_address() == DEV_ADDRESS
    (tmp_path / "key").write_text(DEV_KEY[:-2] + "zz")
    with pytest.raises(ConfigError, match="not a valid secp256k1 private key") as info:
        cfg.keeper_address()
    assert DEV_KEY[2:40] not in str(info.value) and info.value.__context__ is None


def test_kubernetes_secret_volume_layout_loads_and_other_files_are_ignored(tmp_path: Path) -> None:
    """A Secret mounted as a volume: each key a symlink into the hidden `..data` directory; the keystore and
    its password file live beside the settings and are not settings themselves."""
    folder = tmp_path / "mounted"
    data = folder / "..2026_01_01"
    data.mkdir(parents=True)
    (data / "signer__key").write_text(DEV_KEY)
    (data / "store__database_url").write_text(DB_URL)
    (data / "keystore.json").write_text("{}")
    (data / "password").write_text("pw")
    (folder / "..data").symlink_to(data.name)
    for name in ("signer__key", "store__database_url", "keystore.json", "password"):
        (folder / name).symlink_to(f"..data/{name}")
    cfg = load_config(write(tmp_path, {**VALID, "signer": {"kind": "raw"}}), secrets_dir=folder)
    assert cfg.keeper_address() == DEV_ADDRESS
    assert cfg.store.database_url is not None and cfg.store.database_url.get_secret_value() == DB_URL
