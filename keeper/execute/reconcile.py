"""Start-up reconciliation of the journal with the chain, as a pure analysis of nonces.

Input: the chain's nonce counts (latest = mined, pending = mined + in the node's pool) and every journal
intent holding a nonce >= latest or still in flight. Output: what to do with each nonce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["check_mined", "rebroadcast", "resume", "fill_gap", "watch_mined"]


@dataclass(frozen=True)
class JournalNonce:
    nonce: int
    intent_id: int
    has_signed_tx: bool  # at least one attempt stored (raw bytes available)
    on_chain_state: bool  # journal says mined/confirmed (or terminal)


@dataclass(frozen=True)
class NonceStep:
    nonce: int
    action: Action
    intent_id: int | None = None


@dataclass(frozen=True)
class ReconcilePlan:
    steps: tuple[NonceStep, ...]
    foreign_pending: int  # transactions in the node's pool beyond ours: the key is used elsewhere

    @property
    def gaps(self) -> tuple[int, ...]:
        return tuple(s.nonce for s in self.steps if s.action == "fill_gap")


def plan_reconciliation(latest: int, pending: int, held: list[JournalNonce]) -> ReconcilePlan:
    """Classify every journal nonce and find the gaps between the chain's count and our highest nonce.

    * nonce < latest: the chain used it → check which of our attempts was mined (or mark it lost).
    * nonce >= latest with signed bytes → re-broadcast them if the node does not know them.
    * nonce >= latest, no signed bytes → resume (sign at that nonce).
    * a nonce in [latest, highest held] held by nobody → fill it with a zero-value self-transfer.
    """
    by_nonce = {h.nonce: h for h in held}
    steps: list[NonceStep] = []
    for h in sorted(held, key=lambda x: x.nonce):
        if h.nonce < latest:
            steps.append(NonceStep(h.nonce, "watch_mined" if h.on_chain_state else "check_mined", h.intent_id))
        elif h.has_signed_tx:
            steps.append(NonceStep(h.nonce, "rebroadcast", h.intent_id))
        else:
            steps.append(NonceStep(h.nonce, "resume", h.intent_id))
    top = max((h.nonce for h in held if h.nonce >= latest), default=latest - 1)
    for nonce in range(latest, top + 1):
        if nonce not in by_nonce:
            steps.append(NonceStep(nonce, "fill_gap"))
    steps.sort(key=lambda s: (s.nonce, s.action))
    foreign = max(0, pending - max(latest, top + 1))
    return ReconcilePlan(tuple(steps), foreign)
