"""`keeper check-config` against the devnet: every world check's success and failure line, the signer's
address from a keystore (no password) or a remote signer, and the command's exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from keeper.config import KeeperSettings, load_config, render_toml
from keeper.daemon.check import check_world
from keeper.devnet.anvil import DEV_ACCOUNTS, DEV_KEYS, Anvil, rpc
from keeper.devnet.deploy import Deployment
from keeper.devnet.session import devnet_config

KEEPER = DEV_ACCOUNTS[1]  # the devnet's keeper role


def check(cfg: KeeperSettings) -> tuple[int, list[str]]:
    lines: list[str] = []
    return check_world(cfg, lines.append), lines


def configure(tmp_path: Path, anvil: Anvil, deployment: Deployment, **over: Any) -> KeeperSettings:
    data: dict[str, Any] = devnet_config(anvil, deployment)
    for section, fields in over.items():
        data[section] = fields if section == "signer" else {**data.get(section, {}), **fields}
    path = tmp_path / "keeper.toml"
    path.write_text(render_toml(data))
    return load_config(path)


def failures(lines: list[str]) -> list[str]:
    return [line.strip() for line in lines if line.strip().startswith("FAIL")]


def test_devnet_config_passes_every_check(chain: Anvil, deployment: Deployment, tmp_path: Path) -> None:
    problems, lines = check(configure(tmp_path, chain, deployment))
    assert problems == 0 and failures(lines) == [], lines
    assert f"  ok   keeper role: granted to the signer {KEEPER}" in lines
    assert any(line.startswith("  ok   signer balance ") for line in lines)
    assert len([line for line in lines if "code present" in line]) == 7


def test_keeper_role_not_granted_is_a_failure_naming_both_addresses(
    chain: Anvil, deployment: Deployment, tmp_path: Path
) -> None:
    cfg = configure(tmp_path, chain, deployment, signer={"kind": "raw", "key": DEV_KEYS[3]})
    problems, lines = check(cfg)
    assert problems == 1
    assert failures(lines) == [f"FAIL keeper role not granted to the signer {DEV_ACCOUNTS[3]}: "
                               f"VaultManager.keeper() = {KEEPER}"]


def test_signer_balance_below_the_minimum_is_a_failure(chain: Anvil, deployment: Deployment, tmp_path: Path) -> None:
    balance = int(str(rpc(chain.url, "eth_getBalance", [KEEPER, "latest"])), 16)
    cfg = configure(tmp_path, chain, deployment, safety={"min_signer_balance_wei": balance + 1})
    problems, lines = check(cfg)
    assert problems == 1
    assert failures(lines) == [f"FAIL signer balance {balance} wei below safety.min_signer_balance_wei "
                               f"{balance + 1}: fund {KEEPER}"]
    problems, _ = check(configure(tmp_path, chain, deployment, safety={"min_signer_balance_wei": balance}))
    assert problems == 0  # at the minimum is enough


class _StubNode(BaseHTTPRequestHandler):
    """A JSON-RPC endpoint on the devnet's chain id whose head stays at block `head`."""

    head = 0

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answers = {"eth_chainId": hex(31337), "eth_blockNumber": hex(self.head)}
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": answers.get(request["method"])})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stub_node() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StubNode)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


def test_endpoints_out_of_sync_is_a_failure_naming_each_head(
    chain: Anvil, deployment: Deployment, tmp_path: Path, stub_node: str
) -> None:
    head = int(str(rpc(chain.url, "eth_blockNumber")), 16)
    assert head > 3  # the deployment mined far more blocks than the lag allowed
    cfg = configure(tmp_path, chain, deployment, chain={"rpc_urls": [chain.url, stub_node]})
    problems, lines = check(cfg)
    assert problems == 1
    assert failures(lines) == [f"FAIL endpoints out of sync: head spread {head} blocks > chain.max_head_lag_blocks "
                               f"3 (rpc_urls[0] at {head}, rpc_urls[1] at 0)"]
    problems, lines = check(configure(tmp_path, chain, deployment, chain={"rpc_urls": [chain.url, chain.url]}))
    assert problems == 0
    assert "  ok   endpoints in sync: head spread 0 blocks (chain.max_head_lag_blocks 3)" in lines


def write_keystore(tmp_path: Path, key: str, **over: object) -> Path:
    data = {**Account.encrypt(key, "correct horse", kdf="pbkdf2", iterations=2), **over}
    path = tmp_path / "keystore.json"
    path.write_text(json.dumps({k: v for k, v in data.items() if v is not None}))
    return path


def test_keystore_signer_address_comes_from_the_file_and_holds_the_role(
    chain: Anvil, deployment: Deployment, tmp_path: Path
) -> None:
    """The shipped template's signer shape (keystore, no signer.address): role and balance are checked for the
    keystore's address, read without the password."""
    password = tmp_path / "password"
    password.write_text("correct horse\n")
    signer = {"kind": "keystore", "keystore_file": str(write_keystore(tmp_path, DEV_KEYS[1])),
              "password_file": str(password)}
    problems, lines = check(configure(tmp_path, chain, deployment, signer=signer))
    assert problems == 0, lines
    assert f"  ok   signer: {KEEPER} (from keystore {signer['keystore_file']})" in lines
    assert f"  ok   keeper role: granted to the signer {KEEPER}" in lines
    password.unlink()
    problems, lines = check(configure(tmp_path, chain, deployment, signer=signer))
    assert failures(lines) == [f"FAIL signer.password_file {password}: cannot be read"]


def test_keystore_without_an_address_is_a_failure_naming_the_file(
    chain: Anvil, deployment: Deployment, tmp_path: Path
) -> None:
    keystore = write_keystore(tmp_path, DEV_KEYS[1], address=None)
    signer = {"kind": "keystore", "keystore_file": str(keystore), "password_file": str(tmp_path / "p")}
    problems, lines = check(configure(tmp_path, chain, deployment, signer=signer))
    assert problems == 1
    assert failures(lines) == [f'FAIL signer: signer.keystore_file {keystore}: no "address" field (set signer.address)']


def test_shipped_template_with_environment_overrides_checks_the_keystore_address(
    chain: Anvil, deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config/mainnet.template.toml as an operator deploys it: the file unchanged, the network and files given
    by environment variables."""
    password = tmp_path / "password"
    password.write_text("correct horse\n")
    contracts = {k: v for k, v in devnet_config(chain, deployment)["contracts"].items()}  # type: ignore[attr-defined]
    monkeypatch.setenv("KEEPER_CHAIN__CHAIN_ID", "31337")
    monkeypatch.setenv("KEEPER_CHAIN__RPC_URLS", json.dumps([chain.url]))
    monkeypatch.setenv("KEEPER_CONTRACTS", json.dumps(contracts))
    monkeypatch.setenv("KEEPER_SIGNER__KEYSTORE_FILE", str(write_keystore(tmp_path, DEV_KEYS[1])))
    monkeypatch.setenv("KEEPER_SIGNER__PASSWORD_FILE", str(password))
    cfg = load_config(Path(__file__).resolve().parents[1] / "config" / "mainnet.template.toml")
    problems, lines = check(cfg)
    assert problems == 0, lines
    assert f"  ok   keeper role: granted to the signer {KEEPER}" in lines


def test_remote_signer_must_list_the_configured_address(chain: Anvil, deployment: Deployment, tmp_path: Path) -> None:
    """anvil answers eth_accounts with its dev accounts, as a Web3Signer lists the keys it holds."""
    signer = {"kind": "remote", "remote_url": chain.url, "address": KEEPER}
    problems, lines = check(configure(tmp_path, chain, deployment, signer=signer))
    assert problems == 0, lines
    assert f"  ok   signer: remote signer holds signer.address {KEEPER}" in lines
    stranger = "0x" + "ab" * 20
    problems, lines = check(configure(tmp_path, chain, deployment, signer={**signer, "address": stranger}))
    checksummed = checksum(stranger)
    assert f"FAIL signer: remote signer does not list signer.address {checksummed}" in failures(lines)
    assert f"FAIL keeper role not granted to the signer {checksummed}: VaultManager.keeper() = {KEEPER}" in failures(
        lines)


def checksum(address: str) -> str:
    from eth_utils.address import to_checksum_address

    return str(to_checksum_address(address))


def test_no_signer_is_a_failure(chain: Anvil, deployment: Deployment, tmp_path: Path) -> None:
    problems, lines = check(configure(tmp_path, chain, deployment, signer={"kind": "none"}))
    assert problems == 1
    assert failures(lines) == ['FAIL signer: kind "none" cannot sign (set signer.kind to keystore, remote or raw)']


def run_check_config(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "keeper.cli", "check-config", "--config", str(config)],
                          capture_output=True, text=True, timeout=120)


def test_command_exits_2_listing_every_problem_and_0_when_all_pass(
    chain: Anvil, deployment: Deployment, tmp_path: Path, stub_node: str
) -> None:
    data: dict[str, Any] = devnet_config(chain, deployment)
    good = tmp_path / "good.toml"
    good.write_text(render_toml(data))
    ok = run_check_config(good)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "all checks passed" in ok.stdout and "FAIL" not in ok.stdout
    data["chain"] = {**data["chain"], "rpc_urls": [chain.url, stub_node]}
    data["signer"] = {"kind": "raw", "key": DEV_KEYS[3]}
    data["safety"] = {"min_signer_balance_wei": 10**30}
    bad = tmp_path / "bad.toml"
    bad.write_text(render_toml(data))
    result = run_check_config(bad)
    assert result.returncode == 2, result.stdout + result.stderr
    fails = failures(result.stdout.splitlines())
    assert len(fails) == 3, result.stdout
    assert fails[0].startswith("FAIL endpoints out of sync: head spread ")
    assert fails[1] == f"FAIL keeper role not granted to the signer {DEV_ACCOUNTS[3]}: VaultManager.keeper() = {KEEPER}"
    assert fails[2].startswith("FAIL signer balance ")
    assert fails[2].endswith(f"wei below safety.min_signer_balance_wei {10**30}: fund {DEV_ACCOUNTS[3]}")
    assert "3 problem(s) found" in result.stderr and "Traceback" not in result.stderr
    assert DEV_KEYS[3][2:] not in result.stdout + result.stderr
