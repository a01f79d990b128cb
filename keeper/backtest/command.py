"""`keeper backtest`: argument handling behind the CLI subcommand (keeper/cli.py stays a thin wrapper).

Two modes: `--generate N [--seed S] [--step-seconds 60] [--jump SYM:STEP:FACTOR] -o FILE` writes a synthetic
series and exits; `--series FILE [--vaults 3] [--policies fixed,bands,time] [--out DIR]` replays it under
every policy with and without the cost gate, prints the table and writes summary.csv, timeseries.csv and
the PNG plots to DIR. Errors in the arguments or the CSV raise InputError (the CLI exits 2).
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

from keeper.backtest.series import Jump
from keeper.errors import InputError


def _jump(text: str) -> Jump:
    parts = text.split(":")
    if len(parts) != 3 or not parts[1].isdigit():
        raise InputError("--jump", f"expected SYMBOL:STEP:FACTOR (e.g. WETH:100:1.2), got {text!r}")
    try:
        factor = Decimal(parts[2])
    except InvalidOperation:
        raise InputError("--jump", f"factor {parts[2]!r} is not a number") from None
    if factor <= 0:
        raise InputError("--jump", "factor must be positive")
    return Jump(int(parts[1]), parts[0], factor)


def run(args: argparse.Namespace) -> int:
    from keeper.backtest.engine import POLICIES, Options, compare
    from keeper.backtest.report import render_table, write_all
    from keeper.backtest.series import Series, generate, read_csv, write_csv

    if args.generate is not None:
        if args.generate < 1:
            raise InputError("--generate", "needs at least 1 step")
        if not args.output:
            raise InputError("--output", "--generate needs -o/--output FILE for the series")
        jumps = [_jump(t) for t in args.jump or []]
        series = generate(args.generate, seed=args.seed, step_seconds=args.step_seconds, jumps=jumps,
                          gas_price_gwei=Decimal(args.gas_gwei))
        write_csv(series, args.output)
        print(f"series of {len(series.rows)} rows ({args.step_seconds} s apart, seed {args.seed}) "
              f"written to {args.output}")
        return 0
    if not args.series:
        raise InputError("--series", "give a series CSV (or --generate N -o FILE to make one)")
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    for p in policies:
        if p not in POLICIES:
            raise InputError("--policies", f"unknown policy {p!r} (known: {', '.join(POLICIES)})")
    if not policies:
        raise InputError("--policies", "name at least one policy")
    if args.vaults < 1:
        raise InputError("--vaults", "need at least one vault")
    gates = {"both": (True, False), "on": (True,), "off": (False,)}[args.gate]
    series = read_csv(args.series)
    if args.limit:
        series = Series(series.specs, series.rows[: args.limit])
    opts = Options(vaults=args.vaults, equity_usd=args.equity_usd, gas_price_wei=int(Decimal(args.gas_gwei) * 10**9))
    results = compare(series, policies, opts, gates=gates, show_progress=not args.no_progress)
    print(f"{len(series.rows)} ticks, {args.vaults} vaults, series {args.series}")
    print(render_table(results))
    out = Path(args.out)
    written = write_all(results, series, out, plots=not args.no_plots)
    print("written: " + ", ".join(str(p) for p in written))
    sys.stdout.flush()
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--series", help="series CSV to replay (format: docs/backtest.md)")
    p.add_argument("--vaults", type=int, default=3, help="vaults, denominations cycling USDC, WETH, WBTC (default 3)")
    p.add_argument("--policies", default="fixed,bands,time", help="comma-separated: fixed, bands, time")
    p.add_argument("--gate", choices=("both", "on", "off"), default="both",
                   help="run each policy with and/or without the cost gate (default both)")
    p.add_argument("--out", default="backtest-out", help="directory for summary.csv, timeseries.csv, PNGs")
    p.add_argument("--equity-usd", type=int, default=1_000_000, help="starting equity per vault in USD")
    p.add_argument("--gas-gwei", default="1", help="gas price when the series has none (default 1 gwei)")
    p.add_argument("--limit", type=int, default=0, help="replay only the first N rows")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.add_argument("--generate", type=int, default=None, metavar="N", help="write a synthetic series of N steps")
    p.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    p.add_argument("--step-seconds", type=int, default=60, help="generator step (default 60 s)")
    p.add_argument("--jump", action="append", metavar="SYM:STEP:FACTOR", help="generator price jump (repeatable)")
    p.add_argument("-o", "--output", default=None, help="generator output CSV")
