"""The keeper's exception tree. Every error carries its policy: what the caller should do next.

    KeeperError                     root; never raised directly
    ├── ConfigError                 fatal: bad configuration or input; the CLI prints it and exits 2
    │   └── InputError              a user-supplied file (snapshot, plan, CSV) is malformed
    ├── ReadError                   retryable: the chain could not be read (RPC down, timeout, bad answer)
    │   └── OracleError             a price failed the oracle guard; no trade for what depends on it
    ├── DecisionHalt                no trade until the condition clears or an operator acknowledges
    └── SubmissionError             a transaction could not be sent; `.action` says what to do
        ├── action = "retry"        transient (timeout, 5xx): send the same signed bytes again
        ├── action = "replace"      underpriced / stuck: re-price at the same nonce
        └── action = "give_up"      would revert, rejected, or not allowed: fail or re-plan the intent

Messages name the field or the call and the reason; they never contain key material.
"""

from __future__ import annotations

from typing import Literal

SubmissionAction = Literal["retry", "replace", "give_up"]


class KeeperError(Exception):
    """Root of every error the keeper raises on purpose."""

    retryable: bool = False


class ConfigError(KeeperError):
    """Invalid configuration or environment. Fatal: exit 2 with the message, no traceback."""


class InputError(ConfigError):
    """A user-supplied file is malformed. `field` names where, the message says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ReadError(KeeperError):
    """The chain could not be read consistently. Retry (with backoff, on another endpoint)."""

    retryable = True


class OracleError(ReadError):
    """An oracle price is stale, non-positive or disagrees with the other sources."""


class DecisionHalt(KeeperError):
    """The decision core refuses to trade (e.g. a weight beyond its outer band)."""


class SubmissionError(KeeperError):
    """Sending a transaction failed; `action` tells the pipeline what to do next."""

    def __init__(self, message: str, action: SubmissionAction) -> None:
        super().__init__(message)
        self.action: SubmissionAction = action

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.action != "give_up"
