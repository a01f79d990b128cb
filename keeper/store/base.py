"""The journal port: what the execution pipeline needs from durable storage.

Every method is atomic. Implementations: `SqliteStore` (embedded default), `PostgresStore`, `MemoryStore` (fake).
"""

from __future__ import annotations

from typing import Any, Protocol

from keeper.errors import KeeperError
from keeper.store.model import Attempt, AttemptStatus, Intent, IntentRecord, NewAttempt, State


class FencingError(KeeperError):
    """The sender's leader epoch is not the one this process holds: another keeper took over. Stop sending."""


class StaleStateError(KeeperError):
    """The intent was not in the expected state (a concurrent writer or a bug); nothing was written."""


class Store(Protocol):
    def schema_version(self) -> int: ...

    def submit(self, intent: Intent, sender: str, created_block: int | None = None) -> tuple[IntentRecord, bool]:
        """Insert a planned intent, or return the existing one with the same idempotency key (created=False)."""
        ...

    def get(self, intent_id: int) -> IntentRecord: ...

    def get_by_key(self, key: str) -> IntentRecord | None: ...

    def in_flight(self, sender: str) -> list[IntentRecord]:
        """Non-terminal intents of `sender`, by nonce (unassigned last), then id."""
        ...

    def all_intents(self, sender: str) -> list[IntentRecord]: ...

    def transition(self, intent_id: int, expected: State, new: State, **fields: Any) -> IntentRecord:
        """Compare-and-set the state (checked against the state machine) and set `fields` in one write."""
        ...

    def reserve_nonce(self, intent_id: int, sender: str, floor: int, expected_epoch: int | None = None) -> int:
        """Assign the lowest nonce >= `floor` that no intent of `sender` holds; idempotent per intent.

        The sender's epoch is checked in the same transaction (fencing hook): FencingError if it differs.
        """
        ...

    def add_attempt(self, intent_id: int, attempt: NewAttempt, expected: State, new: State) -> Attempt:
        """Store a signed transaction and move the intent (e.g. simulated → signed) in one transaction.

        Idempotent for identical bytes: a `tx_hash` already stored for this intent and nonce is not stored twice;
        the intent is moved as asked and the existing attempt returned (a refused one becomes `signed` again, as
        it is about to be re-sent). The same hash for another intent or nonce is a StaleStateError.
        """
        ...

    def mark_attempt(
        self,
        attempt_id: int,
        status: AttemptStatus,
        *,
        sent_block: int | None = None,
        route: str | None = None,
    ) -> Attempt: ...

    def attempts(self, intent_id: int) -> list[Attempt]: ...

    def held_nonces(self, sender: str, at_least: int = 0) -> list[tuple[int, int, State]]:
        """(nonce, intent id, state) of every intent of `sender` holding a nonce >= `at_least`."""
        ...

    def epoch(self, sender: str) -> int: ...

    def set_epoch(self, sender: str, epoch: int) -> None: ...

    def get_state(self, key: str) -> str | None:
        """A keeper state document (decision memory, fee ledger) or None."""
        ...

    def put_state(self, key: str, value: str) -> None: ...

    def add_record(self, kind: str, key: str, value: str) -> bool:
        """Append a record once; False (and nothing written) when (kind, key) already exists."""
        ...

    def records(self, kind: str) -> list[tuple[str, str]]:
        """(key, value) of every record of `kind`, ordered by key."""
        ...

    def close(self) -> None: ...
