"""Execution counters: plain attributes plus an optional hook (the daemon maps them to Prometheus).

Labels are bounded (reason/result enums, never hashes or addresses). `prometheus_hook(registry)` gives a
ready-made hook with `keeper_execution_*_total` counters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Hook = Callable[[str, Mapping[str, str]], None]

COUNTERS: dict[str, str] = {
    "simulation_reverts": "Intents not sent because re-simulation reverted.",
    "mined_reverts": "Mined transactions that reverted on chain, by the replayed error's name (label error).",
    "broadcasts": "Signed transactions accepted by a node (first sends, replacements, cancels).",
    "rebroadcasts": "Stored transactions re-sent identically after a node lost them.",
    "replacements": "Same-nonce replacements sent with bumped fees.",
    "cancels": "Zero-value self-transfer cancels sent.",
    "fee_cap_waits": "Sends or replacements held back because the fee cap forbids them.",
    "reorgs": "Mined intents whose receipt disappeared in a reorganisation.",
    "give_ups": "Sends refused definitively by a node.",
    "nonce_gaps_filled": "Gap-filling self-transfers created.",
    "send_errors": "Transient send failures (retried).",
    "results": "Intents reaching a terminal state.",
    "alerts": "Operator alerts raised.",
    "tick_errors": "Intent steps that failed in a tick (isolated: the other intents advance; retried next tick).",
    "private_fallbacks": "Intents moved from the private send endpoint to public broadcast.",
}


@dataclass
class ExecutionMetrics:
    hook: Hook | None = None
    labelled: Counter[tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=Counter)
    simulation_reverts: int = 0
    mined_reverts: int = 0
    broadcasts: int = 0
    rebroadcasts: int = 0
    replacements: int = 0
    cancels: int = 0
    fee_cap_waits: int = 0
    reorgs: int = 0
    give_ups: int = 0
    nonce_gaps_filled: int = 0
    send_errors: int = 0
    results: int = 0
    alerts: int = 0
    tick_errors: int = 0
    private_fallbacks: int = 0

    def inc(self, name: str, **labels: str) -> None:
        if name not in COUNTERS:
            raise KeyError(f"unknown execution counter {name}")
        setattr(self, name, getattr(self, name) + 1)
        self.labelled[(name, tuple(sorted(labels.items())))] += 1
        if self.hook is not None:
            self.hook(name, labels)

    def count(self, name: str, **labels: str) -> int:
        if not labels:
            return int(getattr(self, name))
        return self.labelled[(name, tuple(sorted(labels.items())))]


def prometheus_hook(registry: Any) -> Hook:
    """Counters `keeper_execution_<name>_total` in `registry`, label `reason` (`result`; `error`: mined_reverts)."""
    from prometheus_client import Counter as PromCounter

    made: dict[str, Any] = {}

    def hook(name: str, labels: Mapping[str, str]) -> None:
        keys = tuple(sorted(labels))
        metric_key = f"{name}:{','.join(keys)}"
        if metric_key not in made:
            made[metric_key] = PromCounter(f"keeper_execution_{name}", COUNTERS[name], list(keys), registry=registry)
        counter = made[metric_key]
        (counter.labels(**labels) if keys else counter).inc()

    return hook
