"""`keeper backtest` through the real command line (subprocess): generate, replay, files, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

KEEPER = [sys.executable, "-m", "keeper.cli", "backtest"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KEEPER, *args], capture_output=True, text=True, timeout=120)


def test_generate_then_backtest_writes_table_csv_and_plots(tmp_path: Path) -> None:
    series = tmp_path / "series.csv"
    gen = run("--generate", "30", "--seed", "3", "--step-seconds", "3600", "--jump", "WETH:10:1.2", "-o", str(series))
    assert gen.returncode == 0, gen.stderr
    assert series.exists() and len(series.read_text().splitlines()) == 32
    out = tmp_path / "out"
    result = run("--series", str(series), "--policies", "fixed,time", "--out", str(out))
    assert result.returncode == 0, result.stderr
    for label in ("fixed+gate", "fixed ", "time+gate", "time "):
        assert label in result.stdout
    assert "ticks/s" in result.stderr  # the progress line
    for name in ("summary.csv", "timeseries.csv", "hedge_error.png", "equity.png", "costs.png"):
        assert (out / name).stat().st_size > 0, name
    summary = (out / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("policy,gate,vault")
    assert len(summary) == 1 + 4 * (1 + 3)  # 4 runs × (all + 3 vaults)


def test_malformed_series_exits_2_naming_row_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,glp_supply,price_USDC,pool_USDC,reserved_USDC,short_size_usd_USDC,short_avg_USDC\n"
                   "1,100,1,100,0,0,0\n2,100,x,100,0,0,0\n")
    result = run("--series", str(bad), "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "row 2 (line 3), column price_USDC" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_policy_exits_2(tmp_path: Path) -> None:
    result = run("--series", str(tmp_path / "x.csv"), "--policies", "fixed,yolo")
    assert result.returncode == 2
    assert "--policies: unknown policy 'yolo'" in result.stderr
