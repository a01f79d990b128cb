"""Benchmark: `keeper backtest` throughput (ticks per second) for 3 and 50 vaults on 1-minute data.

Owns the throughput measurement only (the replay is `keeper.backtest.engine.run_policy`, unchanged). It
generates a seeded 1-minute series (GBM prices, devnet pool, OI swinging ±10% over 3 days) once, then
replays it with one policy per vault count, one after the other in this process, so the runs share the
machine's conditions: the first vault count is the same-run baseline the others are compared with
(ticks/s ratio and CPU-seconds-per-tick ratio). Reported per run: wall and CPU time (the process's own,
so a machine shared with other jobs inflates wall time but hardly CPU time), ticks/s, the share of wall
time inside `keeper.decide.decide` (the pure decision core, not the backtest's glue) and the rebalances.
`--ticks 525600` is a full year of 1-minute rows. `--json FILE` writes every result as it completes (a
long run in the background leaves what it has measured); progress lines go to stderr once a minute.

    .venv/bin/python -m bench.backtest [--ticks 20000] [--vaults 3,50] [--policy fixed] [--gate on] [--json F]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from keeper.backtest import engine
from keeper.backtest.engine import Options, Progress, run_policy
from keeper.backtest.series import Series, generate

YEAR_TICKS = 525_600


class MinuteProgress(Progress):
    """One progress line a minute (a log file, not a terminal): ticks done, rate, CPU seconds so far."""

    def update(self, done: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.shown < 60:
            return
        self.shown = now
        elapsed = max(now - self.started, 1e-9)
        self.stream.write(f"{self.label}: {done:,}/{self.total:,} ticks, {done / elapsed:,.1f} ticks/s, "
                          f"wall {elapsed:,.0f} s, cpu {time.process_time():,.0f} s\n")
        self.stream.flush()

    def finish(self) -> None:
        self.update(self.total, force=True)


def measure(series: Series, vaults: int, policy: str, gate: bool, progress: Progress | None = None) -> dict[str, Any]:
    real = getattr(engine, "decide")  # noqa: B009 - the engine's own binding, patched below
    spent = [0.0]

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    setattr(engine, "decide", timed)  # noqa: B010 - time the decision core where the engine calls it
    cpu = time.process_time()
    try:
        result = run_policy(series, policy, gate, Options(vaults=vaults), progress=progress)
    finally:
        setattr(engine, "decide", real)  # noqa: B010
    cpu = time.process_time() - cpu
    return {
        "vaults": vaults,
        "ticks": result.ticks,
        "seconds": result.seconds,
        "cpu_seconds": cpu,
        "rate": result.ticks / result.seconds,
        "cpu_ms_per_tick": cpu / result.ticks * 1000,
        "decide_share": spent[0] / result.seconds,
        "rebalances": result.rebalances,
        "year_hours": YEAR_TICKS / (result.ticks / result.seconds) / 3600,
    }


def table(rows: list[dict[str, Any]]) -> str:
    base = rows[0]
    lines = ["| vaults | ticks | wall s | CPU s | ticks/s | CPU ms/tick | CPU per tick vs "
             f"{base['vaults']} vaults | in decide() | rebalances | one year, at this rate |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['vaults']} | {r['ticks']:,} | {r['seconds']:,.1f} | {r['cpu_seconds']:,.1f} | "
                     f"{r['rate']:,.1f} | {r['cpu_ms_per_tick']:.2f} | "
                     f"{r['cpu_ms_per_tick'] / base['cpu_ms_per_tick']:.1f}× | {100 * r['decide_share']:.0f}% | "
                     f"{r['rebalances']:,} | {r['year_hours']:.2f} h |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--ticks", type=int, default=20_000, help="1-minute rows to replay (default 20,000)")
    ap.add_argument("--vaults", default="3,50", help="vault counts, the first is the baseline (default 3,50)")
    ap.add_argument("--policy", default="fixed")
    ap.add_argument("--gate", choices=("on", "off"), default="on")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path, help="write the results here after each run")
    args = ap.parse_args(argv)
    try:
        counts = [int(x) for x in args.vaults.split(",")]
    except ValueError:
        ap.error(f"argument --vaults: not a comma-separated list of integers: {args.vaults!r:.40}")
    if args.ticks < 2 or any(v < 1 for v in counts):
        ap.error("argument --ticks must be ≥ 2 and every --vaults count ≥ 1")
    started = time.perf_counter()
    series = generate(args.ticks - 1, seed=args.seed, step_seconds=60)
    print(f"generated {len(series.rows)} 1-minute rows in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    head = f"policy {args.policy}, cost gate {args.gate}, {args.ticks:,} ticks of 1-minute data (seed {args.seed})"
    for v in counts:
        progress = MinuteProgress(f"{v} vaults", len(series.rows))
        r = measure(series, v, args.policy, args.gate == "on", progress)
        print(f"{v} vaults: {r['rate']:.1f} ticks/s, {r['cpu_ms_per_tick']:.2f} CPU ms/tick", file=sys.stderr)
        rows.append(r)
        if args.json is not None:
            args.json.write_text(json.dumps({"run": head, "results": rows}, indent=1) + "\n")
    print(f"{head}\n\n{table(rows)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
