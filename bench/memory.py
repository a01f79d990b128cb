"""Benchmark: the daemon's memory with 1000 vaults, at start and after an hour of ticks, against a same-run
3-vault baseline.

Owns the measurement only (the daemon is the real `keeper run`, a subprocess stopped by its pid; each run has
its own private anvil, stopped by its pid). Scenario, identical for both runs except the vault count: the
reference system (3 funded, hedged vaults) plus empty vaults added to the same VaultManager up to N; WETH
moves ±12% every `--every` ticks (every feed refreshed) so the funded vaults drift and the keeper plans,
signs, sends and journals rebalances during the run. Time is compressed: one block per tick, mined back to
back as fast as the keeper keeps up (the next block is mined once the daemon's tick counter shows it
ticked the last one), `--ticks 3600` = one hour of one-second ticks. RSS, threads and open file
descriptors come from /proc/<pid>: at the first tick, after a warm-up of `--warmup` ticks (one-time
allocations: lazy imports, ABI caches, the first snapshot of every vault, the first rebalance's signing and
journal paths) and at the end, plus a timeline every 10%. The baseline runs first.

    .venv/bin/python -m bench.memory [--vaults 1000] [--baseline-vaults 3] [--ticks 3600] [--no-baseline]
                                     [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from web3 import Web3

from keeper.config import render_toml
from keeper.devnet.anvil import Anvil, free_port, rpc
from keeper.devnet.deploy import contract, deploy_reference_system
from keeper.devnet.market import Market
from keeper.devnet.session import devnet_config
from keeper.faults.process import ProcStats, http_get, metric, proc_stats

PRICES = {"USDC": Decimal(1), "WETH": Decimal(3000), "WBTC": Decimal(60000)}
FIRST_MOVE = 10  # the first price move lands inside the warm-up


def _steady(pid: int) -> ProcStats:
    """RSS now; fds and threads at their fewest over a second (a scrape's server thread may still be there)."""
    seen = []
    for _ in range(5):
        seen.append(proc_stats(pid))
        time.sleep(0.2)
    return ProcStats(seen[-1].rss_kb, min(s.fds for s in seen), min(s.threads for s in seen))


def run(vaults: int, ticks: int, warmup: int, every: int) -> dict[str, Any]:
    """One daemon over `vaults` vaults for `warmup` + `ticks` ticks; its memory and tick figures."""
    with tempfile.TemporaryDirectory() as tmp, Anvil.start(extra_args=("--gas-limit", "300000000")) as node:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 120}))
        d = deploy_reference_system(w3)
        funded = len(d.vaults)
        vm = contract(w3, "VaultManager", d.vault_manager)
        market = Market(w3, d)
        count = market.add_vaults(vaults - funded)
        rpc(node.url, "evm_setAutomine", [False])  # from here one block per tick, mined by this benchmark

        def move(up: bool) -> None:
            """Every feed refreshed, WETH +12% or back (sent now, mined with the next tick's block)."""
            market.set_prices({**PRICES, "WETH": PRICES["WETH"] * Decimal("1.12") if up else PRICES["WETH"]},
                              wait=False)

        move(False)
        rpc(node.url, "evm_mine")
        port = free_port()
        config = devnet_config(node, d)
        config["state_dir"] = f"{tmp}/state"
        config["metrics"] = {"host": "127.0.0.1", "port": port}
        config["schedule"] = {"poll_seconds": 0.05, "in_flight_seconds": 0.5, "grace_seconds": 20}
        config["chain"] = {**config["chain"], "confirmations": 1}  # type: ignore[dict-item]
        config["safety"] = {"max_rebalances_per_hour": 100_000}  # chain time runs at a few blocks per second
        path = Path(tmp) / "keeper.toml"
        path.write_text(render_toml(config))
        url = f"http://127.0.0.1:{port}/metrics"

        def scrape() -> str:
            return http_get(url)[1]

        def head() -> int:
            return int(str(rpc(node.url, "eth_blockNumber")), 16)

        log = Path(tmp, "keeper.log").open("w")  # noqa: SIM115 - closed in finally
        daemon = subprocess.Popen([sys.executable, "-m", "keeper.cli", "run", "--config", str(path)],
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 180
            while metric(scrape(), "keeper_head_block") < head():
                if time.monotonic() > deadline or daemon.poll() is not None:
                    raise RuntimeError(f"{vaults} vaults: the daemon did not tick within 180 s")
                time.sleep(0.2)
            first = proc_stats(daemon.pid)
            rebalances_before = int(vm.functions.rebalanceCount().call())
            timeline: list[tuple[int, float, ProcStats]] = [(0, 0.0, first)]
            started = time.monotonic()
            warm, measured_from, done_before = first, started, 0.0
            moves = 0
            total = warmup + ticks
            for i in range(total):
                if i == warmup:
                    warm = _steady(daemon.pid)
                    measured_from = time.monotonic()
                    done_before = metric(scrape(), "keeper_ticks_total")
                    timeline.append((i, measured_from - started, warm))
                elif i > warmup and (i - warmup) % max(ticks // 10, 1) == 0:
                    timeline.append((i, time.monotonic() - started, proc_stats(daemon.pid)))
                if i % every == FIRST_MOVE % every:
                    move(up=moves % 2 == 0)
                    moves += 1
                text = scrape()
                ticked = metric(text, "keeper_ticks_total")
                rpc(node.url, "evm_mine")
                target = head()
                tick_deadline = time.monotonic() + 60
                while not (metric(text, "keeper_head_block") >= target and metric(text, "keeper_ticks_total") > ticked):
                    if time.monotonic() > tick_deadline or daemon.poll() is not None:
                        raise RuntimeError(f"{vaults} vaults, tick {i}: the daemon did not tick block {target}")
                    time.sleep(0.02)
                    text = scrape()
            elapsed = time.monotonic() - measured_from
            end = _steady(daemon.pid)
            timeline.append((total, time.monotonic() - started, end))
            text = scrape()
            ok = metric(text, "keeper_ticks_total", result="ok")
            errors = metric(text, "keeper_ticks_total", result="error") + metric(text, "keeper_ticks_total",
                                                                                 result="read_error")
            measured = metric(text, "keeper_ticks_total") - done_before
            for _ in range(5):  # the last move's rebalance, if it is still in the mempool
                rpc(node.url, "evm_mine")
                time.sleep(0.3)
            answered = int(vm.functions.rebalanceCount().call()) - rebalances_before
        finally:
            daemon.terminate()  # by its pid
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            log.close()
    return {
        "vaults": count, "funded": funded, "ticks": ticks, "warmup": warmup, "wall_seconds": elapsed,
        "ms_per_tick": elapsed / ticks * 1000, "ticks_ok": ok, "tick_errors": errors,
        "missed_ticks": max(ticks - int(measured), 0), "moves": moves, "rebalances": answered,
        "first": asdict(first), "warm": asdict(warm), "end": asdict(end),
        "timeline": [{"tick": n, "seconds": round(t, 1), **asdict(s)} for n, t, s in timeline],
    }


def table(rows: list[dict[str, Any]]) -> str:
    base = rows[0]
    lines = [
        "| vaults (funded) | ticks after warm-up | wall s | ms/tick | RSS first tick MiB | RSS after warm-up MiB | "
        f"RSS end MiB | growth after warm-up | RSS end vs {base['vaults']} vaults | threads | fds | "
        "missed ticks | tick errors | price moves → rebalances |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        growth = (r["end"]["rss_kb"] - r["warm"]["rss_kb"]) / r["warm"]["rss_kb"] * 100
        lines.append(
            f"| {r['vaults']} ({r['funded']}) | {r['ticks']:,} | {r['wall_seconds']:,.0f} | {r['ms_per_tick']:.0f} | "
            f"{r['first']['rss_kb'] / 1024:.1f} | {r['warm']['rss_kb'] / 1024:.1f} | {r['end']['rss_kb'] / 1024:.1f} | "
            f"{growth:+.1f}% | {r['end']['rss_kb'] / base['end']['rss_kb']:.2f}× | "
            f"{r['warm']['threads']} → {r['end']['threads']} | {r['warm']['fds']} → {r['end']['fds']} | "
            f"{r['missed_ticks']} | {r['tick_errors']:.0f} | {r['moves']} → {r['rebalances']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--vaults", type=int, default=1000)
    parser.add_argument("--baseline-vaults", type=int, default=3, help="the same-run baseline (default 3)")
    parser.add_argument("--ticks", type=int, default=3600, help="ticks after the warm-up (default 3600: one hour)")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--every", type=int, default=150, help="ticks between WETH moves (default 150)")
    parser.add_argument("--no-baseline", action="store_true", help="only the --vaults run")
    parser.add_argument("--json", type=Path, help="write the results here after each run")
    args = parser.parse_args()
    if min(args.vaults, args.baseline_vaults) < 3 or args.ticks < 10 or args.warmup < 1 or args.every < 1:
        parser.error("vault counts must be ≥ 3 (the reference system's), --ticks ≥ 10, --warmup and --every ≥ 1")
    rows: list[dict[str, Any]] = []
    for vaults in (args.vaults,) if args.no_baseline else (args.baseline_vaults, args.vaults):
        rows.append(run(vaults, args.ticks, args.warmup, args.every))
        print(f"{vaults} vaults done: {rows[-1]['ms_per_tick']:.0f} ms/tick, RSS {rows[-1]['end']['rss_kb']} kB",
              file=sys.stderr, flush=True)
        if args.json is not None:
            args.json.write_text(json.dumps(rows, indent=1) + "\n")
    print(table(rows))
    for r in rows:
        print(f"\n{r['vaults']} vaults, RSS timeline: " + ", ".join(
            f"tick {p['tick']}: {p['rss_kb'] / 1024:.1f} MiB" for p in r["timeline"]))


if __name__ == "__main__":
    main()
