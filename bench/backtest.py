"""Benchmark: `keeper backtest` throughput (ticks per second) for 3 and 50 vaults on 1-minute data.

Generates a seeded 1-minute series (GBM prices, devnet pool, OI swinging ±10% over 3 days) once, then
replays it with one policy per vault count in this process and reports ticks/s, the share of wall time
inside `keeper.decide.decide` (the pure decision core, not the backtest's glue) and the extrapolation to a
year of 1-minute data (525,600 ticks). `--ticks 525600` measures the full year instead of a slice.

    .venv/bin/python -m bench.backtest [--ticks 20000] [--vaults 3,50] [--policy fixed] [--gate on]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from keeper.backtest import engine
from keeper.backtest.engine import Options, run_policy
from keeper.backtest.series import Series, generate

YEAR_TICKS = 525_600


def measure(series: Series, vaults: int, policy: str, gate: bool) -> dict[str, Any]:
    real = engine.decide
    spent = [0.0]

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    engine.decide = timed  # type: ignore[assignment]
    try:
        result = run_policy(series, policy, gate, Options(vaults=vaults), progress=None)
    finally:
        engine.decide = real  # type: ignore[assignment]
    rate = result.ticks / result.seconds
    return {
        "vaults": vaults,
        "ticks": result.ticks,
        "seconds": result.seconds,
        "rate": rate,
        "decide_share": spent[0] / result.seconds,
        "rebalances": result.rebalances,
        "year_hours": YEAR_TICKS / rate / 3600,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--ticks", type=int, default=20_000, help="1-minute rows to replay (default 20,000)")
    ap.add_argument("--vaults", default="3,50")
    ap.add_argument("--policy", default="fixed")
    ap.add_argument("--gate", choices=("on", "off"), default="on")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    started = time.perf_counter()
    series = generate(args.ticks - 1, seed=args.seed, step_seconds=60)
    print(f"generated {len(series.rows)} 1-minute rows in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    rows = []
    for v in (int(x) for x in args.vaults.split(",")):
        r = measure(series, v, args.policy, args.gate == "on")
        print(f"{v} vaults: {r['rate']:.0f} ticks/s", file=sys.stderr)
        rows.append(r)
    print(f"policy {args.policy}, cost gate {args.gate}, {args.ticks:,} ticks of 1-minute data (seed {args.seed})\n")
    print("| vaults | ticks | wall s | ticks/s | in decide() | rebalances | one year (525,600 ticks), extrapolated |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['vaults']} | {r['ticks']:,} | {r['seconds']:.1f} | {r['rate']:,.0f} | "
              f"{100 * r['decide_share']:.0f}% | {r['rebalances']} | {r['year_hours']:.1f} h |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
