"""In-memory journal: the fake shipped with the port. Same contract as the SQL stores, no durability."""

from __future__ import annotations

import dataclasses
from typing import Any

from keeper.store.base import FencingError, StaleStateError
from keeper.store.model import (
    MUTABLE_FIELDS,
    TERMINAL,
    Attempt,
    AttemptStatus,
    Intent,
    IntentRecord,
    NewAttempt,
    State,
    check_transition,
)


class MemoryStore:
    def __init__(self) -> None:
        self._intents: dict[int, IntentRecord] = {}
        self._by_key: dict[str, int] = {}
        self._attempts: dict[int, Attempt] = {}
        self._epochs: dict[str, int] = {}
        self._state: dict[str, str] = {}
        self._records: dict[tuple[str, str], str] = {}

    def get_state(self, key: str) -> str | None:
        return self._state.get(key)

    def put_state(self, key: str, value: str) -> None:
        self._state[key] = value

    def add_record(self, kind: str, key: str, value: str) -> bool:
        if (kind, key) in self._records:
            return False
        self._records[(kind, key)] = value
        return True

    def records(self, kind: str) -> list[tuple[str, str]]:
        return sorted((k, v) for (kd, k), v in self._records.items() if kd == kind)

    def schema_version(self) -> int:
        from keeper.store.sql import MIGRATIONS

        return len(MIGRATIONS)

    def submit(self, intent: Intent, sender: str, created_block: int | None = None) -> tuple[IntentRecord, bool]:
        existing = self._by_key.get(intent.idempotency_key)
        if existing is not None:
            return self._intents[existing], False
        record = IntentRecord(
            id=len(self._intents) + 1, sender=sender, intent=intent, state=State.PLANNED, created_block=created_block
        )
        self._intents[record.id] = record
        self._by_key[intent.idempotency_key] = record.id
        return record, True

    def get(self, intent_id: int) -> IntentRecord:
        try:
            return self._intents[intent_id]
        except KeyError:
            raise KeyError(f"intent {intent_id} not in the journal") from None

    def get_by_key(self, key: str) -> IntentRecord | None:
        found = self._by_key.get(key)
        return None if found is None else self._intents[found]

    def in_flight(self, sender: str) -> list[IntentRecord]:
        live = [r for r in self._intents.values() if r.sender == sender and r.state not in TERMINAL]
        return sorted(live, key=lambda r: (r.nonce is None, r.nonce or 0, r.id))

    def all_intents(self, sender: str) -> list[IntentRecord]:
        return [r for r in self._intents.values() if r.sender == sender]

    def transition(self, intent_id: int, expected: State, new: State, **fields: Any) -> IntentRecord:
        check_transition(expected, new)
        unknown = set(fields) - MUTABLE_FIELDS
        if unknown:
            raise ValueError(f"transition: unknown fields {sorted(unknown)}")
        record = self.get(intent_id)
        if record.state != expected:
            raise StaleStateError(f"intent {intent_id}: expected state {expected}, found another; nothing written")
        if fields.get("nonce") is not None and self._holder(record.sender, fields["nonce"]) not in (None, intent_id):
            raise StaleStateError(f"intent {intent_id}: nonce already held")
        updated = dataclasses.replace(record, state=new, **fields)
        self._intents[intent_id] = updated
        return updated

    def _holder(self, sender: str, nonce: int) -> int | None:
        for r in self._intents.values():
            if r.sender == sender and r.nonce == nonce:
                return r.id
        return None

    def reserve_nonce(self, intent_id: int, sender: str, floor: int, expected_epoch: int | None = None) -> int:
        epoch = self._epochs.setdefault(sender, 0)
        if expected_epoch is not None and epoch != expected_epoch:
            raise FencingError(f"sender epoch is {epoch}, this keeper holds {expected_epoch}; not reserving")
        record = self.get(intent_id)
        if record.sender != sender:
            raise KeyError(f"intent {intent_id} of this sender not in the journal")
        if record.nonce is not None:
            return record.nonce
        held = {r.nonce for r in self._intents.values() if r.sender == sender and r.nonce is not None}
        nonce = floor
        while nonce in held:
            nonce += 1
        self._intents[intent_id] = dataclasses.replace(record, nonce=nonce)
        return nonce

    def add_attempt(self, intent_id: int, attempt: NewAttempt, expected: State, new: State) -> Attempt:
        check_transition(expected, new)
        record = self.get(intent_id)
        existing = next((a for a in self._attempts.values() if a.tx_hash == attempt.tx_hash), None)
        if existing is not None and (existing.intent_id != intent_id or existing.nonce != attempt.nonce):
            raise StaleStateError(f"attempt {attempt.tx_hash} is already stored for another intent or nonce")
        if record.state != expected or record.nonce != attempt.nonce:
            if existing is not None and (record.state, record.nonce) == (new, attempt.nonce):
                return existing
            raise StaleStateError(f"intent {intent_id}: not in state {expected} at nonce {attempt.nonce}")
        self._intents[intent_id] = dataclasses.replace(record, state=new)
        if existing is not None:
            if existing.status is AttemptStatus.REJECTED:
                existing = dataclasses.replace(existing, status=AttemptStatus.SIGNED)
                self._attempts[existing.id] = existing
            return existing
        seq = 1 + max((a.seq for a in self._attempts.values() if a.intent_id == intent_id), default=0)
        stored = Attempt(
            id=len(self._attempts) + 1,
            intent_id=intent_id,
            seq=seq,
            kind=attempt.kind,
            nonce=attempt.nonce,
            tx_hash=attempt.tx_hash,
            raw=attempt.raw,
            gas_limit=attempt.gas_limit,
            max_fee=attempt.max_fee,
            priority_fee=attempt.priority_fee,
            gas_price=attempt.gas_price,
            status=AttemptStatus.SIGNED,
            signed_block=attempt.signed_block,
        )
        self._attempts[stored.id] = stored
        return stored

    def mark_attempt(
        self,
        attempt_id: int,
        status: AttemptStatus,
        *,
        sent_block: int | None = None,
        route: str | None = None,
    ) -> Attempt:
        try:
            current = self._attempts[attempt_id]
        except KeyError:
            raise KeyError(f"attempt {attempt_id} not in the journal") from None
        updated = dataclasses.replace(
            current,
            status=status,
            route=route if route is not None else current.route,
            first_sent_block=current.first_sent_block if current.first_sent_block is not None else sent_block,
            last_sent_block=sent_block if sent_block is not None else current.last_sent_block,
        )
        self._attempts[attempt_id] = updated
        return updated

    def attempts(self, intent_id: int) -> list[Attempt]:
        return sorted((a for a in self._attempts.values() if a.intent_id == intent_id), key=lambda a: a.seq)

    def held_nonces(self, sender: str, at_least: int = 0) -> list[tuple[int, int, State]]:
        rows = [
            (r.nonce, r.id, r.state)
            for r in self._intents.values()
            if r.sender == sender and r.nonce is not None and r.nonce >= at_least
        ]
        return sorted((n, i, s) for n, i, s in rows if n is not None)

    def epoch(self, sender: str) -> int:
        return self._epochs.setdefault(sender, 0)

    def set_epoch(self, sender: str, epoch: int) -> None:
        self._epochs[sender] = epoch

    def close(self) -> None:
        pass
