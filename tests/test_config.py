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
