"""`keeper backtest`: replay a price / pool / OI series through the decision core, netting and cost model
without a chain, and compare trigger policies. Pure apart from `report` (files) and the progress line.

Modules: series (CSV format and the synthetic generator), world (the simulated GLP pool, lending account
and books → Snapshot; fills at the marks), engine (the replay loop and its metrics), report (table, CSV,
PNG). docs/backtest.md describes the format, the metrics and the simplifications.
"""

from keeper.backtest.engine import POLICIES, Options, PolicyResult, Progress, compare, policy_rules, run_policy
from keeper.backtest.series import Jump, Series, generate, parse_rows, read_csv, write_csv

__all__ = [
    "POLICIES",
    "Jump",
    "Options",
    "PolicyResult",
    "Progress",
    "Series",
    "compare",
    "generate",
    "parse_rows",
    "policy_rules",
    "read_csv",
    "run_policy",
    "write_csv",
]
