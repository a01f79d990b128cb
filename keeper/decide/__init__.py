"""The decision core: snapshot + rules + memory → triggers, halts, plan and the memory to persist. Pure.

Public surface: `decide`, `Decision`, `Rules`, `Memory`, `Plan`, `VaultPlan`, `plan_to_json_dict`,
`plan_from_json_dict`, `render_table`, `TriggerResult`. Modules: exposure (marks, OI, exposure per GLP),
fit (closed-form per-vault fit, caps, margin), cycle (marking, interest, queue, buffer), triggers, plan,
rules, memory, decision (the entry point). `lyf` is the separate LYF planner. Nothing here imports web3,
reads the clock or does I/O.
"""

from keeper.decide.decision import Decision, decide
from keeper.decide.plan import Plan, VaultPlan, plan_from_json_dict, plan_to_json_dict, render_table
from keeper.decide.rules import Rules
from keeper.decide.triggers import TriggerResult
from keeper.snapshot import Memory

__all__ = [
    "Decision",
    "Memory",
    "Plan",
    "Rules",
    "TriggerResult",
    "VaultPlan",
    "decide",
    "plan_from_json_dict",
    "plan_to_json_dict",
    "render_table",
]
