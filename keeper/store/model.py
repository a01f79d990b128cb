"""The intent journal's data model and its state machine. Pure: no I/O, no clock, no web3.

planned ─► simulated ─► signed ─► broadcast ─► mined ─► confirmed ─► finalized
   │           │  ▲        │          ▲  │        │          │
   │           │  └────────┘ rejected │  │        └──────────┴──► broadcast   (reorg)
   │           │   before broadcast   │  │                   │
   ▼           ▼   (nonce kept)       │  ▼                   ├──► failed      (reverted / no event, final)
failed / cancelled                    │ failed (nonce lost)  └──► cancelled   (cancel tx won, final)
                                      └─ replacements stay in broadcast (new attempt, same nonce)

"replaced" is an *attempt* status, not an intent state: an attempt superseded by a later attempt at the same
nonce that a node accepted (or by the one that was mined) is recorded as replaced. An intent superseded by a
re-plan is cancelled (`cancel_reason`), never "replaced".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

Urgency = Literal["low", "normal", "high"]
IntentKind = Literal["call", "gap_fill"]
AttemptKind = Literal["original", "replacement", "cancel"]
Outcome = Literal["success", "reverted", "no_event", "cancelled"]


class State(StrEnum):
    PLANNED = "planned"
    SIMULATED = "simulated"
    SIGNED = "signed"
    BROADCAST = "broadcast"
    MINED = "mined"
    CONFIRMED = "confirmed"
    FINALIZED = "finalized"
    FAILED = "failed"
    CANCELLED = "cancelled"


class AttemptStatus(StrEnum):
    SIGNED = "signed"  # stored, not (known to be) broadcast
    BROADCAST = "broadcast"  # a node accepted it (or said "already known")
    REJECTED = "rejected"  # a node refused it definitively; never in a mempool
    REPLACED = "replaced"  # superseded: a later attempt at the same nonce was accepted, or another one was mined
    MINED = "mined"


TERMINAL: frozenset[State] = frozenset({State.FINALIZED, State.FAILED, State.CANCELLED})
# States in which the journal holds a nonce that a transaction may use (or has used).
ON_CHAIN: frozenset[State] = frozenset({State.BROADCAST, State.MINED, State.CONFIRMED})

TRANSITIONS: dict[State, frozenset[State]] = {
    State.PLANNED: frozenset({State.SIMULATED, State.FAILED, State.CANCELLED}),
    State.SIMULATED: frozenset({State.SIMULATED, State.SIGNED, State.FAILED, State.CANCELLED}),
    # signed → simulated: the node refused the bytes as underpriced before any broadcast (nonce kept, re-priced)
    State.SIGNED: frozenset({State.BROADCAST, State.MINED, State.SIMULATED, State.FAILED}),
    # broadcast → simulated: our nonce was consumed by a transaction that is not ours (key used elsewhere)
    State.BROADCAST: frozenset({State.BROADCAST, State.MINED, State.SIMULATED, State.FAILED}),
    State.MINED: frozenset({State.CONFIRMED, State.BROADCAST}),
    State.CONFIRMED: frozenset({State.FINALIZED, State.FAILED, State.CANCELLED, State.BROADCAST}),
    State.FINALIZED: frozenset(),
    State.FAILED: frozenset(),
    State.CANCELLED: frozenset(),
}


class InvalidTransition(ValueError):
    """A state change the machine does not allow (a bug or a concurrent writer)."""


def check_transition(current: State, new: State) -> State:
    if new not in TRANSITIONS[current]:
        raise InvalidTransition(f"intent state {current} cannot become {new}")
    return new


def final_state(outcome: Outcome) -> State:
    """Where a mined intent lands once the finalized tag covers it."""
    return {"success": State.FINALIZED, "cancelled": State.CANCELLED}.get(outcome, State.FAILED)


@dataclass(frozen=True)
class ExpectedEvent:
    """Success requires a log with this topic0 emitted by this address."""

    topic0: str
    address: str


@dataclass(frozen=True)
class Intent:
    """What the planner wants on chain, once. `idempotency_key` identifies it across restarts."""

    idempotency_key: str
    to: str
    data: bytes = b""
    value: int = 0
    gas_limit: int | None = None
    deadline_block: int | None = None
    expected_event: ExpectedEvent | None = None
    urgency: Urgency = "normal"
    kind: IntentKind = "call"

    def __post_init__(self) -> None:
        if not self.idempotency_key:
            raise ValueError("intent.idempotency_key: empty")
        if self.value < 0:
            raise ValueError("intent.value: negative")


def idempotency_key(plan_id: str, to: str, data: bytes, value: int) -> str:
    """A key derived from the plan: the same plan always yields the same key."""
    digest = hashlib.sha256()
    for part in (plan_id.encode(), to.lower().encode(), data, str(value).encode()):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return "plan:" + digest.hexdigest()


@dataclass(frozen=True)
class Attempt:
    """One signed transaction of an intent: the original, a replacement or a cancel, at the intent's nonce."""

    id: int
    intent_id: int
    seq: int
    kind: AttemptKind
    nonce: int
    tx_hash: str
    raw: bytes = field(repr=False)
    gas_limit: int
    max_fee: int | None
    priority_fee: int | None
    gas_price: int | None
    status: AttemptStatus
    route: str | None = None
    first_sent_block: int | None = None  # first block at which a node accepted it
    last_sent_block: int | None = None
    signed_block: int | None = None  # head when it was signed (its first send try follows in the same tick)


@dataclass(frozen=True)
class NewAttempt:
    kind: AttemptKind
    nonce: int
    tx_hash: str
    raw: bytes = field(repr=False)
    gas_limit: int
    max_fee: int | None
    priority_fee: int | None
    gas_price: int | None
    signed_block: int | None = None


@dataclass(frozen=True)
class IntentRecord:
    id: int
    sender: str
    intent: Intent
    state: State
    nonce: int | None = None
    gas_estimate: int | None = None
    simulated_block: int | None = None
    cancel_reason: str | None = None
    outcome: Outcome | None = None
    mined_block: int | None = None
    mined_block_hash: str | None = None
    mined_tx_hash: str | None = None
    error: str | None = None
    nonce_lost_block: int | None = None
    created_block: int | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


# Columns of `intents` that `Store.transition` may set alongside the state.
MUTABLE_FIELDS: frozenset[str] = frozenset(
    {
        "nonce",
        "gas_estimate",
        "simulated_block",
        "cancel_reason",
        "outcome",
        "mined_block",
        "mined_block_hash",
        "mined_tx_hash",
        "error",
        "nonce_lost_block",
    }
)
