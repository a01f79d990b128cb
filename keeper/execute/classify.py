"""Classify a node's answer to eth_sendRawTransaction into a policy. Pure: strings in, decision out.

| kind               | examples (geth, erigon, anvil, nethermind)                | pipeline does               |
|--------------------|-----------------------------------------------------------|-----------------------------|
| already_known      | already known, transaction already imported               | treat as broadcast          |
| nonce_too_low      | nonce too low, nonce has already been used                | check our hashes, reconcile |
| underpriced        | replacement transaction underpriced, transaction underpr. | replace with higher fees    |
| fee_too_low        | max fee per gas less than block base fee, fee cap too low | re-price (replace)          |
| insufficient_funds | insufficient funds for gas * price + value                | give up + alert             |
| reverted           | execution reverted                                        | give up (fail / re-plan)    |
| rejected           | intrinsic gas too low, exceeds block gas limit, invalid…  | give up                     |
| transient          | timeout, connection error, HTTP 5xx, rate limit, unknown  | retry the same bytes        |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from keeper.errors import SubmissionAction, SubmissionError

SendKind = Literal[
    "already_known",
    "nonce_too_low",
    "underpriced",
    "fee_too_low",
    "insufficient_funds",
    "reverted",
    "rejected",
    "transient",
]

_PATTERNS: tuple[tuple[SendKind, tuple[str, ...]], ...] = (
    ("already_known", ("already known", "already imported", "alreadyknown")),
    ("nonce_too_low", ("nonce too low", "nonce has already been used", "oldnonce", "nonce is too low")),
    ("underpriced", ("replacement transaction underpriced", "transaction underpriced", "replacement underpriced")),
    (
        "fee_too_low",
        ("less than block base fee", "fee cap less than", "feecap too low", "max fee per gas less than"),
    ),
    ("insufficient_funds", ("insufficient funds", "insufficient balance")),
    ("reverted", ("execution reverted", "revert")),
    (
        "rejected",
        (
            "intrinsic gas too low",
            "exceeds block gas limit",
            "invalid sender",
            "invalid signature",
            "invalid chain id",
            "incorrect chain id",
            "tx fee",  # geth: "tx fee (x ether) exceeds the configured cap"
            "oversized data",
            "nonce too high",
            "gas limit reached",
        ),
    ),
)

ACTIONS: dict[SendKind, SubmissionAction] = {
    "already_known": "retry",
    "nonce_too_low": "retry",
    "underpriced": "replace",
    "fee_too_low": "replace",
    "insufficient_funds": "give_up",
    "reverted": "give_up",
    "rejected": "give_up",
    "transient": "retry",
}


@dataclass(frozen=True)
class SendOutcome:
    kind: SendKind
    message: str

    @property
    def action(self) -> SubmissionAction:
        return ACTIONS[self.kind]

    @property
    def definitive_rejection(self) -> bool:
        """The node refused these bytes: they are not in its mempool (the nonce may be released)."""
        return self.kind in ("insufficient_funds", "reverted", "rejected", "fee_too_low", "underpriced")


def classify_send_error(message: str, code: int | None = None, *, http_status: int | None = None) -> SendOutcome:
    """A JSON-RPC error (or transport failure) from a send, as a policy decision."""
    if http_status is not None and (http_status >= 500 or http_status == 429):
        return SendOutcome("transient", message)
    text = message.lower()
    for kind, needles in _PATTERNS:
        if any(n in text for n in needles):
            return SendOutcome(kind, message)
    return SendOutcome("transient", message)


class SendError(SubmissionError):
    """A classified send failure; `outcome.kind` is the fine-grained class, `action` the policy."""

    def __init__(self, outcome: SendOutcome) -> None:
        super().__init__(f"eth_sendRawTransaction: {outcome.kind}: {outcome.message[:200]}", outcome.action)
        self.outcome = outcome
