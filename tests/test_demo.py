"""`keeper demo`: its flags (checked, exit 2 naming the flag), its table and trigger tally, and the demo itself.

- fast: option parsing and validation, shock placement, the live table's width, trigger attribution.
- smoke (make test): `keeper demo --days 1 --no-live` as a subprocess: the daemon started and rebalanced,
  the report folder is complete, nothing it started is left running.
- slow (`-m slow`, by hand or a make target that selects slow tests): the default 8-day run produces every
  trigger kind (mined, not just submitted) and at least three recurring cycles.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from keeper.cli import build_parser, main
from keeper.devnet.demo import (
    PLOTS,
    REQUIRED_TRIGGERS,
    WIDTH,
    Demo,
    DemoOptions,
    Row,
    VaultRow,
    options_from_args,
    plan_triggers,
)
from keeper.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["demo", *argv])


# --- flags --------------------------------------------------------------------------------------------------------
def test_defaults_are_the_documented_run() -> None:
    o = options_from_args(parse())
    assert (o.days, o.step_seconds, o.seed, o.steps) == (8, 7200, 11, 96)
    assert o.volatility == {"WETH": Decimal("0.8"), "WBTC": Decimal("0.6")}
    shocks = {(s.step, s.symbol): s.factor for s in o.script().shocks}
    # crash on day 3 (step 36), rally on day 5 (step 60) of 12 steps a day
    assert shocks == {(36, "WETH"): Decimal("0.78"), (36, "WBTC"): Decimal("0.82"),
                      (60, "WETH"): Decimal("1.30"), (60, "WBTC"): Decimal("1.25")}


def test_flags_set_volatility_and_shocks() -> None:
    o = options_from_args(parse("--days", "4", "--step-hours", "6", "--seed", "3", "--vol", "WETH=120",
                                "--crash-day", "1.5", "--crash-pct", "40", "--rally-day", "3", "--rally-pct", "0",
                                "--step-wall-seconds", "0.2"))
    assert (o.days, o.step_seconds, o.seed, o.step_wall_seconds) == (4, 6 * 3600, 3, 0.2)
    assert o.volatility == {"WETH": Decimal("1.2"), "WBTC": Decimal("0.6")}  # WBTC keeps its default
    assert {(s.step, s.symbol, s.factor) for s in o.script().shocks} == {(6, "WETH", Decimal("0.6")),
                                                                         (6, "WBTC", Decimal("0.6"))}
    short = options_from_args(parse("--days", "1"))  # default shocks at 3/8 and 5/8 of the run
    assert sorted({s.step for s in short.script().shocks}) == [4, 8]
    calm = options_from_args(parse("--vol", "0", "--crash-pct", "0", "--rally-pct", "0"))
    assert calm.script().shocks == () and set(calm.volatility.values()) == {Decimal(0)}


@pytest.mark.parametrize(("argv", "flag"), [
    (["--days", "0"], "--days"), (["--days", "two"], "--days"), (["--days", "1.5"], "--days"),
    (["--step-hours", "5"], "--step-hours"), (["--step-hours", "0"], "--step-hours"),
    (["--seed", "-1"], "--seed"), (["--vol", "-5"], "--vol"), (["--vol", "501"], "--vol"),
    (["--vol", "DOGE=10"], "--vol"), (["--vol", "WETH"], "--vol"), (["--vol", "nan"], "--vol"),
    (["--crash-pct", "100"], "--crash-pct"), (["--rally-pct", "1001"], "--rally-pct"),
    (["--crash-day", "9"], "--crash-day"), (["--rally-day", "0"], "--rally-day"),
    (["--days", "2", "--crash-day", "3"], "--crash-day"), (["--step-wall-seconds", "0"], "--step-wall-seconds"),
])
def test_bad_values_name_the_flag(argv: list[str], flag: str) -> None:
    with pytest.raises(InputError) as caught:
        options_from_args(parse(*argv))
    assert caught.value.field == flag


def test_cli_exits_2_without_a_traceback_and_starts_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--vol", "WETH=x", "--state-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --vol: not a number") and "Traceback" not in err
    assert not out.exists()


# --- table and tally ------------------------------------------------------------------------------------------------
def test_live_table_shows_the_books_within_120_columns() -> None:
    demo = Demo(DemoOptions())
    demo.symbols = ("USDC", "WETH", "WBTC")
    demo.names = {0: "usdc", 1: "eth", 2: "btc"}
    big = Decimal("98765432.10")
    vaults = {v: VaultRow(equity=big, glp=big, hedge=(big, Decimal("12345.678"), Decimal(0)), collateral_usd=big,
                          buffer_usd=Decimal("9876543"), drift=Decimal("0.2345"), hedge_pnl=Decimal("-0.1234"),
                          fees_usd=Decimal("1234567"), gas_eth=Decimal("123.4567"), hf=Decimal("1.5"),
                          hf_before=Decimal("1.1")) for v in range(3)}
    row = Row(step=96, time=0, block=123456, prices={"WETH": Decimal("3999.99"), "WBTC": Decimal("65432.1")},
              hf_before=Decimal("1.18"), hf=Decimal("1.5"), vaults=vaults, rebalances=1234, in_flight=3,
              last_action="rebalance #1234 at step 96")
    lines = demo.table(row, unmined=1)
    assert max(len(line) for line in lines) <= WIDTH
    header = lines[2]
    for column in ("GLP units", "hedge USDC", "hedge WETH", "hedge WBTC", "collat. $", "buffer $", "fees $", "gas ETH"):
        assert column in header
    first = lines[3].split()
    assert first[:4] == ["0", "usdc", "98,765,432", "98,765,432"] and "12,345.678" in first and "-" in first
    assert "unmined 1" in lines[1] and "HF 1.500 (after the market's move 1.180)" in lines[0]


def test_plan_triggers_count_what_the_plan_traded() -> None:
    plan: dict[str, Any] = {
        "vaults": [{"vault_id": 0}, {"vault_id": 1}],
        "reasons": ["delta_drift[vault:0:WETH] FIRED: 1335 vs 500 bps",
                    "delta_drift[vault:1:USDC] FIRED: 900 vs 500 bps",
                    "band[vault:2:WETH] FIRED: 1922 vs 250/1000 bps since 1796149433",  # vault 2 halted: not in plan
                    "net_oi[asset:WETH] FIRED: 23250 vs 500 bps since 1796156637",
                    "health_factor[account] FIRED: 1.1 vs 1.2 x"],
    }
    assert plan_triggers(plan) == {"delta_drift", "net_oi", "health_factor"}
    assert plan_triggers({"vaults": [], "reasons": ["cycle[account] FIRED: 172800 vs 172800 s since 1"]}) == {"cycle"}


# --- the demo, end to end ---------------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def _ancestors() -> set[int]:
    """This process and its parents (a wrapper such as `timeout ... env X=<dir> pytest` may name the dir)."""
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return pids


def _mentioning(text: str) -> list[int]:
    """Live processes (not this test's own ancestry) whose command line names `text`."""
    pids = []
    mine = _ancestors()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in mine:
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def run_demo(out: Path, *argv: str, timeout: float) -> tuple[dict[str, Any], str]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "keeper.cli", "demo", "--no-live", "--state-dir", str(out), *argv],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    summary: dict[str, Any] = json.loads((out / "report" / "summary.json").read_text())
    # nothing it started is left: the anvil and daemon pids are gone, no process names the state dir
    assert summary["anvil"]["pid"] and summary["daemon"]["pid"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (_alive(summary["anvil"]["pid"]) or _alive(summary["daemon"]["pid"])):
        time.sleep(0.2)
    assert not _alive(summary["anvil"]["pid"]) and not _alive(summary["daemon"]["pid"])
    assert _mentioning(str(out)) == []
    print(f"demo {' '.join(argv) or '(defaults)'}: {time.monotonic() - started:.0f} s wall")
    return summary, output


@pytest.mark.anvil
def test_one_day_demo_runs_the_daemon_and_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    summary, output = run_demo(out, "--days", "1", timeout=240)
    assert summary["daemon"]["started"] and summary["daemon"]["exit_code"] == 0
    assert f"keeper run started (pid {summary['daemon']['pid']})" in output
    assert summary["steps"] == summary["steps_planned"] == 12
    assert summary["rebalances_on_chain"] >= 1 and summary["rebalances_mined"] >= 1
    assert summary["intent_outcomes"].get("success", 0) >= summary["rebalances_mined"]
    assert sum(summary["rebalances_by_trigger"].values()) >= 1
    vaults = summary["vaults"]
    assert set(vaults) == {"0", "1", "2"}
    assert any(Decimal(v["fees_usd"]) > 0 for v in vaults.values())
    assert any(Decimal(v["gas_eth"]) > 0 for v in vaults.values())
    assert "summary:" in output and "fees" in output and "gas" in output
    report = out / "report"
    with (report / "rows.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12
    for column in ("hf", "hf_before", "glp_0", "hedge_WETH_0", "collateral_usd_0", "buffer_usd_0", "fees_usd_0",
                   "gas_eth_0", "hf_0", "hf_before_0", "drift_2", "equity_usd_1"):
        assert column in rows[0], column
    assert int(rows[-1]["rebalances"]) == summary["rebalances_on_chain"]
    for v in ("0", "1", "2"):  # cumulative costs from the journal only grow, whatever the prices do
        fees = [Decimal(r[f"fees_usd_{v}"]) for r in rows]
        assert fees == sorted(fees)
    assert Decimal(vaults["0"]["min_health_factor"]) > 1  # the vault's own HF, never liquidatable here
    for name in PLOTS:
        data = (report / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000, name


def _slow_selected(request: pytest.FixtureRequest) -> None:
    if not request.config.getoption("markexpr"):
        pytest.skip("slow: the full 8-day demo; run with -m slow (or -m 'slow or not slow')")


@pytest.mark.slow
@pytest.mark.anvil
def test_default_demo_mines_every_trigger_kind_and_several_cycles(tmp_path: Path,
                                                                 request: pytest.FixtureRequest) -> None:
    _slow_selected(request)
    out = Path(os.environ.get("KEEPER_DEMO_OUT", tmp_path / "demo"))
    summary, output = run_demo(out, timeout=3600)
    print(output[output.index("summary:"):])
    mined = summary["rebalances_by_trigger"]
    missing = [t for t in REQUIRED_TRIGGERS if not mined.get(t)]
    assert not missing, f"no mined rebalance answered {missing}: {mined}"
    assert summary["recurring_cycles"] >= 3
    assert summary["lyf"]["rebalances_mined"] >= 1 and summary["lyf"]["rebalances_by_trigger"]
    assert summary["steps"] == 96
