"""The command line: help lists every subcommand; user errors (including settings-source errors) exit 2 with
one message, no traceback; `keeper ack-halt` lists halts and writes chain-stamped acknowledgements."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from keeper.cli import HALT_ACKS_KEY, acknowledge_halts, current_halts, halt_acks
from keeper.config import render_toml
from keeper.daemon.app import MEMORY_KEY
from keeper.devnet.anvil import rpc
from keeper.errors import ConfigError, InputError, ReadError
from keeper.store import open_store

KEEPER = [sys.executable, "-m", "keeper.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KEEPER, *args], capture_output=True, text=True, timeout=60)


def test_help_lists_subcommands_with_one_line_each() -> None:
    result = run("--help")
    assert result.returncode == 0
    for name in ("devnet", "status", "run", "snapshot", "plan", "fees", "check-config", "ack-halt", "demo"):
        lines = [line for line in result.stdout.splitlines() if line.strip().startswith(name + " ")]
        assert len(lines) == 1, result.stdout
        assert len(lines[0].split(None, 1)[1]) > 10  # a real one-line description


def test_missing_config_file_exits_2_without_traceback(tmp_path: Path) -> None:
    result = run("status", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "nope.toml: not found" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_invalid_config_lists_fields_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[chain]\nchain_id = "x"\nrpc_urls = []\n')
    result = run("status", "--config", str(path))
    assert result.returncode == 2
    assert "chain.chain_id" in result.stderr
    assert "chain.rpc_urls" in result.stderr
    assert "contracts: Field required" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_arguments_exit_2() -> None:
    result = run("status", "--format", "yaml", "--config", "x")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_plan_rejects_malformed_snapshot_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "snap.json"
    bad.write_text('{"chain_id": 1}')
    result = run("plan", "--snapshot", str(bad))
    assert result.returncode == 2
    assert "error: block_number: missing" in result.stderr
    assert "Traceback" not in result.stderr
    bad.write_text("{not json")
    result = run("plan", "--snapshot", str(bad))
    assert result.returncode == 2 and "not valid JSON (line 1" in result.stderr


# --- settings-source errors through the command line ----------------------------------------------------------

ADDR = "0x" + "11" * 20
DEV_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil dev key #1 (devnet only)


def write_config(tmp_path: Path, rpc_url: str = "http://127.0.0.1:9", **extra: object) -> Path:
    contracts = {k: ADDR for k in ("vault_manager", "multicall", "gmx_vault", "glp_manager", "reward_router",
                                   "pool", "glp")}
    data = {"state_dir": str(tmp_path / "state"), "chain": {"chain_id": 31337, "rpc_urls": [rpc_url]},
            "contracts": contracts, **extra}
    path = tmp_path / "keeper.toml"
    path.write_text(render_toml(data))
    return path


def run_env(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KEEPER, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **env})


def test_environment_variable_that_is_not_json_exits_2_naming_it(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    for command in ("check-config", "run"):
        result = run_env({"KEEPER_CHAIN__RPC_URLS": "not-json"}, command, "--config", config)
        assert result.returncode == 2, (command, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout
        assert "environment variable KEEPER_CHAIN__RPC_URLS: not valid JSON" in result.stderr
        assert "not-json" not in result.stderr
    broken = '{"kind": "raw", "key": "' + DEV_KEY  # a secret in a table cut short: named, never echoed
    result = run_env({"KEEPER_SIGNER": broken}, "run", "--config", config)
    assert result.returncode == 2 and "environment variable KEEPER_SIGNER: not valid JSON" in result.stderr
    assert DEV_KEY[2:] not in result.stderr + result.stdout and "Traceback" not in result.stderr


def test_missing_secrets_dir_exits_2_naming_it(tmp_path: Path) -> None:
    result = run_env({"KEEPER_SECRETS_DIR": str(tmp_path / "absent")}, "check-config", "--config",
                     str(write_config(tmp_path)))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "(KEEPER_SECRETS_DIR): not found" in result.stderr


def test_metrics_port_out_of_range_is_an_argument_error() -> None:
    result = run("run", "--config", "x.toml", "--metrics-port", "70000")
    assert result.returncode == 2 and "port 70000 out of range" in result.stderr


# --- ack-halt -------------------------------------------------------------------------------------------------

HALTS = {"band:0:WETH": 1_000, "band:2:WBTC": 2_000}


def journal(path: Path, halts: dict[str, int], acks: dict[str, int] | None = None, *, raw_acks: str | None = None
            ) -> None:
    """A journal as the daemon leaves it: its decision memory (with halts), optionally acknowledgements."""

    path.parent.mkdir(parents=True, exist_ok=True)
    store = open_store(path)
    try:
        store.put_state(MEMORY_KEY, json.dumps({"halts": sorted([k, v] for k, v in halts.items()),
                                                "acks": [], "marked_at": 0}))
        if acks is not None or raw_acks is not None:
            store.put_state(HALT_ACKS_KEY, raw_acks if raw_acks is not None else json.dumps(acks))
    finally:
        store.close()


def stored(path: Path, key: str = HALT_ACKS_KEY) -> str | None:
    store = open_store(path)
    try:
        return store.get_state(key)
    finally:
        store.close()


def test_acknowledge_halts_merges_into_the_stored_acks(tmp_path: Path) -> None:

    path = tmp_path / "journal.sqlite3"
    journal(path, HALTS, {"band:2:WBTC": 2_500, "band:9:OLD": 5})
    store = open_store(path)
    try:
        assert current_halts(store) == HALTS
        assert acknowledge_halts(store, ["band:0:WETH"], 3_000) == {"band:0:WETH": 3_000, "band:2:WBTC": 2_500,
                                                                     "band:9:OLD": 5}
        assert halt_acks(store) == {"band:0:WETH": 3_000, "band:2:WBTC": 2_500, "band:9:OLD": 5}
        acknowledge_halts(store, ["band:2:WBTC"], 3_100)  # a newer ack replaces the older one
        assert json.loads(store.get_state(HALT_ACKS_KEY) or "") == {"band:0:WETH": 3_000, "band:2:WBTC": 3_100,
                                                                   "band:9:OLD": 5}
    finally:
        store.close()


def test_acknowledge_halts_refuses_unknown_keys_and_stale_timestamps_writing_nothing(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal(path, HALTS, {"band:2:WBTC": 2_500})
    store = open_store(path)
    try:
        with pytest.raises(InputError, match=r"band:1:WETH: not a current halt \(current halts: band:0:WETH, "
                                             r"band:2:WBTC\)"):
            acknowledge_halts(store, ["band:0:WETH", "band:1:WETH"], 3_000)
        with pytest.raises(ReadError, match="older than halt band:2:WBTC"):
            acknowledge_halts(store, ["band:2:WBTC"], 1_999)  # an ack older than the halt would not clear it
        assert halt_acks(store) == {"band:2:WBTC": 2_500}
    finally:
        store.close()


def test_malformed_stored_acks_are_reported_not_overwritten(tmp_path: Path) -> None:

    path = tmp_path / "journal.sqlite3"
    for raw in ('["band:0:WETH"]', '{"band:0:WETH": "soon"}', "{not json", '{"band:0:WETH": -1}'):
        journal(path, HALTS, raw_acks=raw)
        store = open_store(path)
        try:
            with pytest.raises(ConfigError, match="journal state halt-acks: expected a JSON object"):
                acknowledge_halts(store, ["band:0:WETH"], 3_000)
        finally:
            store.close()
        assert stored(path) == raw


def latest_block(url: str) -> tuple[int, int]:
    block = rpc(url, "eth_getBlockByNumber", ["latest", False])
    assert isinstance(block, dict)
    return int(block["number"], 16), int(block["timestamp"], 16)


def test_ack_halt_command_lists_acknowledges_at_the_chain_time_and_rejects_unknown_keys(
    anvil: Any, tmp_path: Path
) -> None:
    _, now = latest_block(anvil.url)
    halts = {"band:0:WETH": now - 600, "band:2:WBTC": now - 60}
    config = write_config(tmp_path, anvil.url)
    path = tmp_path / "state" / "journal.sqlite3"
    journal(path, halts, {"band:2:WBTC": now - 3_600})  # acknowledged before this halt was raised: no effect

    listing = run("ack-halt", "--config", str(config), "--list")
    assert listing.returncode == 0, listing.stderr
    assert f"  band:0:WETH  raised at {now - 600}  not acknowledged" in listing.stdout
    assert f"  band:2:WBTC  raised at {now - 60}  not acknowledged" in listing.stdout

    unknown = run("ack-halt", "--config", str(config), "band:7:WETH")
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert "band:7:WETH: not a current halt (current halts: band:0:WETH, band:2:WBTC)" in unknown.stderr

    acked = run("ack-halt", "--config", str(config), "--list", "band:0:WETH")
    assert acked.returncode == 0, acked.stderr
    number, timestamp = latest_block(anvil.url)
    assert f"acknowledged band:0:WETH at {timestamp} (block {number})" in acked.stdout
    assert f"  band:0:WETH  raised at {now - 600}  acknowledged at {timestamp}" in acked.stdout
    assert json.loads(stored(path) or "") == {"band:0:WETH": timestamp, "band:2:WBTC": now - 3_600}


def test_ack_halt_without_a_journal_exits_2(tmp_path: Path) -> None:
    result = run("ack-halt", "--config", str(write_config(tmp_path)), "--list")
    assert result.returncode == 2 and "state_dir: no journal at" in result.stderr
    assert "Traceback" not in result.stderr


def test_ack_halt_with_no_endpoint_answering_exits_1_writing_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9")  # discard port: nothing listens
    path = tmp_path / "state" / "journal.sqlite3"
    journal(path, HALTS)
    result = run("ack-halt", "--config", str(config), "band:0:WETH")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no endpoint gave the latest block (rpc_urls[0] did not answer)" in result.stderr
    assert stored(path) is None
