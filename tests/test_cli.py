"""The command line: help lists every subcommand; user errors exit 2 with one message, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

KEEPER = [sys.executable, "-m", "keeper.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KEEPER, *args], capture_output=True, text=True, timeout=60)


def test_help_lists_subcommands_with_one_line_each() -> None:
    result = run("--help")
    assert result.returncode == 0
    for name in ("devnet", "status", "run", "snapshot", "plan", "fees", "check-config", "demo"):
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
