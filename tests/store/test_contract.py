"""The journal contract, run on MemoryStore, SqliteStore and PostgresStore alike (plus SQLite specifics:
WAL mode, migrating an older journal file)."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from keeper.store import (
    AttemptStatus,
    ExpectedEvent,
    FencingError,
    Intent,
    InvalidTransition,
    NewAttempt,
    SqliteStore,
    StaleStateError,
    State,
    Store,
    idempotency_key,
)
from keeper.store.sql import MIGRATIONS

SENDER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
TO = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def make_intent(key: str = "k1", **kw: object) -> Intent:
    return Intent(idempotency_key=key, to=TO, data=b"\x01\x02", value=10**30, **kw)  # type: ignore[arg-type]


def new_attempt(nonce: int, tx_hash: str, kind: str = "original") -> NewAttempt:
    return NewAttempt(
        kind=kind,  # type: ignore[arg-type]
        nonce=nonce,
        tx_hash=tx_hash,
        raw=b"\x02\xf8" + bytes(20),
        gas_limit=21000,
        max_fee=3 * 10**9,
        priority_fee=10**9,
        gas_price=None,
    )


def test_schema_is_migrated_to_the_latest_version(store: Store) -> None:
    assert store.schema_version() == len(MIGRATIONS)


def test_reopening_keeps_data_and_does_not_remigrate(store_factory: object) -> None:
    first = store_factory()  # type: ignore[operator]
    record, _ = first.submit(make_intent(), SENDER)
    second = store_factory()  # type: ignore[operator]
    assert second.schema_version() == len(MIGRATIONS)
    assert second.get(record.id) == record


def test_submit_is_idempotent_per_key(store: Store) -> None:
    intent = make_intent(expected_event=ExpectedEvent("0x" + "ab" * 32, TO), deadline_block=99, gas_limit=50_000)
    first, created = store.submit(intent, SENDER, created_block=7)
    again, created_again = store.submit(intent, SENDER, created_block=8)
    assert created and not created_again
    assert again == first
    assert first.state is State.PLANNED and first.intent == intent and first.created_block == 7
    assert store.get_by_key(intent.idempotency_key) == first
    assert store.get_by_key("missing") is None
    assert len(store.all_intents(SENDER)) == 1


def test_idempotency_key_is_derived_from_the_plan() -> None:
    assert idempotency_key("plan-1", TO, b"\x01", 5) == idempotency_key("plan-1", TO.lower(), b"\x01", 5)
    assert idempotency_key("plan-1", TO, b"\x01", 5) != idempotency_key("plan-2", TO, b"\x01", 5)
    assert idempotency_key("plan-1", TO, b"\x01", 5) != idempotency_key("plan-1", TO, b"\x01", 6)


def test_transition_is_compare_and_set_and_follows_the_machine(store: Store) -> None:
    record, _ = store.submit(make_intent(), SENDER)
    moved = store.transition(record.id, State.PLANNED, State.SIMULATED, gas_estimate=21000, simulated_block=3)
    assert moved.state is State.SIMULATED and moved.gas_estimate == 21000 and moved.simulated_block == 3
    with pytest.raises(StaleStateError):
        store.transition(record.id, State.PLANNED, State.SIMULATED)
    with pytest.raises(InvalidTransition):
        store.transition(record.id, State.SIMULATED, State.FINALIZED)
    with pytest.raises(ValueError, match="unknown fields"):
        store.transition(record.id, State.SIMULATED, State.SIMULATED, state="x")
    assert store.get(record.id).state is State.SIMULATED


def test_nonce_reservation_takes_the_lowest_free_nonce_and_is_idempotent(store: Store) -> None:
    a, _ = store.submit(make_intent("a"), SENDER)
    b, _ = store.submit(make_intent("b"), SENDER)
    c, _ = store.submit(make_intent("c"), SENDER)
    assert store.reserve_nonce(a.id, SENDER, floor=5) == 5
    assert store.reserve_nonce(a.id, SENDER, floor=5) == 5  # idempotent
    assert store.reserve_nonce(b.id, SENDER, floor=5) == 6
    # release a's nonce (rejected before broadcast): the next reservation reuses it, no gap
    store.transition(a.id, State.PLANNED, State.FAILED, nonce=None)
    assert store.reserve_nonce(c.id, SENDER, floor=5) == 5
    assert [(n, i) for n, i, _ in store.held_nonces(SENDER)] == [(5, c.id), (6, b.id)]
    assert [r.id for r in store.in_flight(SENDER)] == [c.id, b.id]


def test_nonce_reservation_respects_the_chain_floor(store: Store) -> None:
    a, _ = store.submit(make_intent("a"), SENDER)
    b, _ = store.submit(make_intent("b"), SENDER)
    assert store.reserve_nonce(a.id, SENDER, floor=0) == 0
    assert store.reserve_nonce(b.id, SENDER, floor=3) == 3


def test_nonces_are_per_sender(store: Store) -> None:
    other = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
    a, _ = store.submit(make_intent("a"), SENDER)
    b, _ = store.submit(make_intent("b"), other)
    assert store.reserve_nonce(a.id, SENDER, 0) == 0
    assert store.reserve_nonce(b.id, other, 0) == 0


def test_fencing_epoch_is_checked_in_the_reservation(store: Store) -> None:
    a, _ = store.submit(make_intent("a"), SENDER)
    assert store.epoch(SENDER) == 0
    store.set_epoch(SENDER, 4)
    with pytest.raises(FencingError):
        store.reserve_nonce(a.id, SENDER, floor=0, expected_epoch=3)
    assert store.get(a.id).nonce is None
    assert store.reserve_nonce(a.id, SENDER, floor=0, expected_epoch=4) == 0


def test_attempts_store_every_signed_transaction(store: Store) -> None:
    record, _ = store.submit(make_intent(), SENDER)
    store.transition(record.id, State.PLANNED, State.SIMULATED)
    nonce = store.reserve_nonce(record.id, SENDER, 0)
    with pytest.raises(StaleStateError):  # wrong nonce: nothing stored
        store.add_attempt(record.id, new_attempt(nonce + 1, "0x" + "01" * 32), State.SIMULATED, State.SIGNED)
    first = store.add_attempt(record.id, new_attempt(nonce, "0x" + "01" * 32), State.SIMULATED, State.SIGNED)
    assert store.get(record.id).state is State.SIGNED
    assert first.seq == 1 and first.status is AttemptStatus.SIGNED and first.raw == b"\x02\xf8" + bytes(20)
    sent = store.mark_attempt(first.id, AttemptStatus.BROADCAST, sent_block=10, route="public")
    assert (sent.first_sent_block, sent.last_sent_block, sent.route) == (10, 10, "public")
    again = store.mark_attempt(first.id, AttemptStatus.BROADCAST, sent_block=12)
    assert (again.first_sent_block, again.last_sent_block, again.route) == (10, 12, "public")
    store.transition(record.id, State.SIGNED, State.BROADCAST)
    second = store.add_attempt(
        record.id, new_attempt(nonce, "0x" + "02" * 32, "replacement"), State.BROADCAST, State.BROADCAST
    )
    assert second.seq == 2
    attempts = store.attempts(record.id)
    assert [a.tx_hash for a in attempts] == ["0x" + "01" * 32, "0x" + "02" * 32]
    assert [a.kind for a in attempts] == ["original", "replacement"]
    assert store.attempts(9999) == []


def test_terminal_intents_leave_in_flight_but_keep_their_nonce(store: Store) -> None:
    record, _ = store.submit(make_intent(), SENDER)
    store.transition(record.id, State.PLANNED, State.SIMULATED)
    nonce = store.reserve_nonce(record.id, SENDER, 0)
    store.add_attempt(record.id, new_attempt(nonce, "0x" + "03" * 32), State.SIMULATED, State.SIGNED)
    for old, new in [
        (State.SIGNED, State.BROADCAST),
        (State.BROADCAST, State.MINED),
        (State.MINED, State.CONFIRMED),
        (State.CONFIRMED, State.FINALIZED),
    ]:
        store.transition(record.id, old, new)
    assert store.in_flight(SENDER) == []
    assert store.held_nonces(SENDER) == [(nonce, record.id, State.FINALIZED)]
    other, _ = store.submit(make_intent("other"), SENDER)
    assert store.reserve_nonce(other.id, SENDER, 0) == nonce + 1


def test_state_documents_and_records_survive_reopen(store_factory: object) -> None:
    first = store_factory()  # type: ignore[operator]
    assert first.get_state("memory") is None
    first.put_state("memory", '{"a": 1}')
    first.put_state("memory", '{"a": 2}')
    assert first.add_record("attribution", "000001", '{"gas": 5}') is True
    assert first.add_record("attribution", "000001", '{"gas": 6}') is False  # append-only: never overwritten
    assert first.add_record("attribution", "000002", "{}") is True
    again = store_factory()  # type: ignore[operator]
    assert again.get_state("memory") == '{"a": 2}'
    assert again.records("attribution") == [("000001", '{"gas": 5}'), ("000002", "{}")]
    assert again.records("other") == []


def _signed_intent(store: Store, key: str = "k1") -> tuple[int, int]:
    record, _ = store.submit(make_intent(key), SENDER)
    store.transition(record.id, State.PLANNED, State.SIMULATED)
    return record.id, store.reserve_nonce(record.id, SENDER, 0)


def test_add_attempt_is_idempotent_for_identical_bytes(store: Store) -> None:
    intent_id, nonce = _signed_intent(store)
    first = store.add_attempt(intent_id, new_attempt(nonce, "0x" + "04" * 32), State.SIMULATED, State.SIGNED)
    # replayed (e.g. after a crash between the write and its acknowledgement): same row, nothing new
    again = store.add_attempt(intent_id, new_attempt(nonce, "0x" + "04" * 32), State.SIMULATED, State.SIGNED)
    assert again == first and len(store.attempts(intent_id)) == 1
    # refused, then the identical bytes signed again: one row, live again, the intent moved as asked
    store.mark_attempt(first.id, AttemptStatus.REJECTED)
    store.transition(intent_id, State.SIGNED, State.SIMULATED)
    resigned = store.add_attempt(intent_id, new_attempt(nonce, "0x" + "04" * 32), State.SIMULATED, State.SIGNED)
    assert resigned.id == first.id and resigned.status is AttemptStatus.SIGNED
    assert store.get(intent_id).state is State.SIGNED and len(store.attempts(intent_id)) == 1
    # the same hash for another intent is refused, nothing written
    other_id, other_nonce = _signed_intent(store, "k2")
    with pytest.raises(StaleStateError, match="another intent"):
        store.add_attempt(other_id, new_attempt(other_nonce, "0x" + "04" * 32), State.SIMULATED, State.SIGNED)
    assert store.get(other_id).state is State.SIMULATED and store.attempts(other_id) == []


def test_attempts_keep_the_block_they_were_signed_at(store: Store) -> None:
    intent_id, nonce = _signed_intent(store)
    made = dataclasses.replace(new_attempt(nonce, "0x" + "05" * 32), signed_block=41)
    stored = store.add_attempt(intent_id, made, State.SIMULATED, State.SIGNED)
    assert stored.signed_block == 41 and store.attempts(intent_id)[0].signed_block == 41
    assert stored.first_sent_block is None  # signed is not sent


def test_sqlite_journal_is_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    store = SqliteStore(path)
    try:
        store.submit(make_intent(), SENDER)
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        with sqlite3.connect(path) as other:  # WAL is a property of the file: every connection sees it
            assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert (tmp_path / "journal.sqlite3-wal").exists()
    finally:
        store.close()


def test_a_journal_at_an_older_schema_is_migrated_in_place(tmp_path: Path) -> None:
    """A version-2 journal (before attempts.signed_block) opens, migrates, and keeps its rows."""
    path = tmp_path / "journal.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for steps in MIGRATIONS[:2]:
            for step in steps:
                conn.execute(step.replace("{pk}", "INTEGER PRIMARY KEY"))
        conn.execute("INSERT INTO schema_version (version) VALUES (2)")
        conn.execute(
            "INSERT INTO intents (idempotency_key, sender, kind, to_address, data, value, urgency, state, nonce) "
            "VALUES ('old', ?, 'call', ?, '0x', '1', 'normal', 'broadcast', 0)",
            (SENDER, TO),
        )
        conn.execute(
            "INSERT INTO attempts (intent_id, seq, kind, nonce, tx_hash, raw, gas_limit, max_fee, priority_fee, "
            "status, first_sent_block) VALUES (1, 1, 'original', 0, ?, '0x02', 21000, '3', '1', 'broadcast', 9)",
            ("0x" + "06" * 32,),
        )
    store = SqliteStore(path)
    try:
        assert store.schema_version() == len(MIGRATIONS)
        (attempt,) = store.attempts(1)
        assert attempt.first_sent_block == 9 and attempt.signed_block is None
        assert store.get_by_key("old") is not None
    finally:
        store.close()
