# ruff: noqa: S608 - interpolated SQL is only module constants and column names checked against MUTABLE_FIELDS
"""SQL journal: one implementation for SQLite (WAL, embedded default) and PostgreSQL (psycopg 3).

The SQL is shared; the dialects differ in placeholders, the primary-key type, row locking and how a
write transaction starts. Bytes are stored as 0x-hex text and uint256 amounts as decimal text, so the
same statements run on both.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, cast

from keeper.ha.lease import FENCE_SQL
from keeper.store.base import FencingError, StaleStateError
from keeper.store.model import (
    MUTABLE_FIELDS,
    TERMINAL,
    Attempt,
    AttemptStatus,
    ExpectedEvent,
    Intent,
    IntentRecord,
    NewAttempt,
    State,
    check_transition,
)

# Ordered migrations; version N is MIGRATIONS[N-1]. `{pk}` is the dialect's auto-increment primary key.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE senders (sender TEXT PRIMARY KEY, epoch BIGINT NOT NULL DEFAULT 0)",
        """CREATE TABLE intents (
            id {pk},
            idempotency_key TEXT NOT NULL UNIQUE,
            sender TEXT NOT NULL,
            kind TEXT NOT NULL,
            to_address TEXT NOT NULL,
            data TEXT NOT NULL,
            value TEXT NOT NULL,
            gas_limit BIGINT,
            deadline_block BIGINT,
            event_topic TEXT,
            event_address TEXT,
            urgency TEXT NOT NULL,
            state TEXT NOT NULL,
            nonce BIGINT,
            gas_estimate BIGINT,
            simulated_block BIGINT,
            cancel_reason TEXT,
            outcome TEXT,
            mined_block BIGINT,
            mined_block_hash TEXT,
            mined_tx_hash TEXT,
            error TEXT,
            nonce_lost_block BIGINT,
            created_block BIGINT
        )""",
        # the safety net: two intents of one sender can never hold the same nonce
        "CREATE UNIQUE INDEX intents_sender_nonce ON intents (sender, nonce) WHERE nonce IS NOT NULL",
        "CREATE INDEX intents_sender_state ON intents (sender, state)",
        """CREATE TABLE attempts (
            id {pk},
            intent_id BIGINT NOT NULL REFERENCES intents (id),
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            nonce BIGINT NOT NULL,
            tx_hash TEXT NOT NULL UNIQUE,
            raw TEXT NOT NULL,
            gas_limit BIGINT NOT NULL,
            max_fee TEXT,
            priority_fee TEXT,
            gas_price TEXT,
            status TEXT NOT NULL,
            route TEXT,
            first_sent_block BIGINT,
            last_sent_block BIGINT,
            UNIQUE (intent_id, seq)
        )""",
    ),
    (
        # keeper state that must survive restarts: decision memory, the fee ledger (JSON documents)
        "CREATE TABLE keeper_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        # per-rebalance records (fee and gas attribution), append-only
        "CREATE TABLE keeper_records (kind TEXT NOT NULL, record_key TEXT NOT NULL, value TEXT NOT NULL, "
        "PRIMARY KEY (kind, record_key))",
    ),
    (
        # the head at signing: the private send window counts from the first send try, not the first success
        "ALTER TABLE attempts ADD COLUMN signed_block BIGINT",
    ),
)

_INTENT_COLS = (
    "id, idempotency_key, sender, kind, to_address, data, value, gas_limit, deadline_block, event_topic, "
    "event_address, urgency, state, nonce, gas_estimate, simulated_block, cancel_reason, outcome, mined_block, "
    "mined_block_hash, mined_tx_hash, error, nonce_lost_block, created_block"
)
_ATTEMPT_COLS = (
    "id, intent_id, seq, kind, nonce, tx_hash, raw, gas_limit, max_fee, priority_fee, gas_price, status, route, "
    "first_sent_block, last_sent_block, signed_block"
)
_NON_TERMINAL = tuple(s.value for s in State if s not in TERMINAL)


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _unhex(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _intent_row(row: Sequence[Any]) -> IntentRecord:
    event = ExpectedEvent(row[9], row[10]) if row[9] is not None else None
    intent = Intent(
        idempotency_key=row[1],
        to=row[4],
        data=_unhex(row[5]),
        value=int(row[6]),
        gas_limit=_opt_int(row[7]),
        deadline_block=_opt_int(row[8]),
        expected_event=event,
        urgency=row[11],
        kind=row[3],
    )
    return IntentRecord(
        id=int(row[0]),
        sender=row[2],
        intent=intent,
        state=State(row[12]),
        nonce=_opt_int(row[13]),
        gas_estimate=_opt_int(row[14]),
        simulated_block=_opt_int(row[15]),
        cancel_reason=row[16],
        outcome=row[17],
        mined_block=_opt_int(row[18]),
        mined_block_hash=row[19],
        mined_tx_hash=row[20],
        error=row[21],
        nonce_lost_block=_opt_int(row[22]),
        created_block=_opt_int(row[23]),
    )


def _attempt_row(row: Sequence[Any]) -> Attempt:
    return Attempt(
        id=int(row[0]),
        intent_id=int(row[1]),
        seq=int(row[2]),
        kind=row[3],
        nonce=int(row[4]),
        tx_hash=row[5],
        raw=_unhex(row[6]),
        gas_limit=int(row[7]),
        max_fee=_opt_int(row[8]),
        priority_fee=_opt_int(row[9]),
        gas_price=_opt_int(row[10]),
        status=AttemptStatus(row[11]),
        route=row[12],
        first_sent_block=_opt_int(row[13]),
        last_sent_block=_opt_int(row[14]),
        signed_block=_opt_int(row[15]),
    )


class _Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: Any, params: Sequence[Any] = ...) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class SqlStore:
    """Shared implementation; subclasses provide the connection and the dialect."""

    pk_type = "INTEGER PRIMARY KEY"
    lock_suffix = ""

    def _sql(self, sql: str) -> str:
        return sql

    @contextmanager
    def _tx(self) -> Iterator[_Cursor]:
        raise NotImplementedError
        yield

    def _run(self, cur: _Cursor, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        cur.execute(self._sql(sql), tuple(params))
        return cur

    # --- migrations -------------------------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self._tx() as cur:
            self._run(cur, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = self.schema_version()
        for version, steps in enumerate(MIGRATIONS, start=1):
            if version <= current:
                continue
            with self._tx() as cur:
                # re-read inside the write transaction: another process opening the same file may have
                # applied this step since (SQLite's BEGIN IMMEDIATE serialises; PostgreSQL holds an advisory lock)
                if self._version(cur) >= version:
                    continue
                for step in steps:
                    self._run(cur, step.replace("{pk}", self.pk_type))
                self._run(cur, "DELETE FROM schema_version")
                self._run(cur, "INSERT INTO schema_version (version) VALUES (?)", (version,))

    def schema_version(self) -> int:
        with self._tx() as cur:
            return self._version(cur)

    def _version(self, cur: _Cursor) -> int:
        row = self._run(cur, "SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    # --- intents ----------------------------------------------------------------------------------------------
    def submit(self, intent: Intent, sender: str, created_block: int | None = None) -> tuple[IntentRecord, bool]:
        with self._tx() as cur:
            row = self._run(
                cur, f"SELECT {_INTENT_COLS} FROM intents WHERE idempotency_key = ?", (intent.idempotency_key,)
            ).fetchone()
            if row is not None:
                return _intent_row(row), False
            self._fence(cur, sender, None)  # only the leader journals new intents
            event = intent.expected_event
            row = self._run(
                cur,
                "INSERT INTO intents (idempotency_key, sender, kind, to_address, data, value, gas_limit, "
                "deadline_block, event_topic, event_address, urgency, state, created_block) "
                f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_INTENT_COLS}",
                (
                    intent.idempotency_key,
                    sender,
                    intent.kind,
                    intent.to,
                    _hex(intent.data),
                    str(intent.value),
                    intent.gas_limit,
                    intent.deadline_block,
                    event.topic0 if event else None,
                    event.address if event else None,
                    intent.urgency,
                    State.PLANNED.value,
                    created_block,
                ),
            ).fetchone()
            return _intent_row(row), True

    def get(self, intent_id: int) -> IntentRecord:
        with self._tx() as cur:
            row = self._run(cur, f"SELECT {_INTENT_COLS} FROM intents WHERE id = ?", (intent_id,)).fetchone()
        if row is None:
            raise KeyError(f"intent {intent_id} not in the journal")
        return _intent_row(row)

    def get_by_key(self, key: str) -> IntentRecord | None:
        with self._tx() as cur:
            row = self._run(cur, f"SELECT {_INTENT_COLS} FROM intents WHERE idempotency_key = ?", (key,)).fetchone()
        return None if row is None else _intent_row(row)

    def in_flight(self, sender: str) -> list[IntentRecord]:
        marks = ", ".join("?" for _ in _NON_TERMINAL)
        with self._tx() as cur:
            rows = self._run(
                cur,
                f"SELECT {_INTENT_COLS} FROM intents WHERE sender = ? AND state IN ({marks}) "
                "ORDER BY CASE WHEN nonce IS NULL THEN 1 ELSE 0 END, nonce, id",
                (sender, *_NON_TERMINAL),
            ).fetchall()
        return [_intent_row(r) for r in rows]

    def all_intents(self, sender: str) -> list[IntentRecord]:
        with self._tx() as cur:
            rows = self._run(cur, f"SELECT {_INTENT_COLS} FROM intents WHERE sender = ? ORDER BY id", (sender,))
            return [_intent_row(r) for r in rows.fetchall()]

    def transition(self, intent_id: int, expected: State, new: State, **fields: Any) -> IntentRecord:
        check_transition(expected, new)
        unknown = set(fields) - MUTABLE_FIELDS
        if unknown:
            raise ValueError(f"transition: unknown fields {sorted(unknown)}")
        sets = ", ".join(["state = ?", *(f"{name} = ?" for name in fields)])
        with self._tx() as cur:
            row = self._run(
                cur,
                f"UPDATE intents SET {sets} WHERE id = ? AND state = ? RETURNING {_INTENT_COLS}",
                (new.value, *fields.values(), intent_id, expected.value),
            ).fetchone()
        if row is None:
            raise StaleStateError(f"intent {intent_id}: expected state {expected}, found another; nothing written")
        return _intent_row(row)

    def _ensure_sender(self, cur: _Cursor, sender: str) -> int:
        self._run(cur, "INSERT INTO senders (sender, epoch) VALUES (?, 0) ON CONFLICT (sender) DO NOTHING", (sender,))
        row = self._run(cur, f"SELECT epoch FROM senders WHERE sender = ?{self.lock_suffix}", (sender,)).fetchone()
        return int(row[0])

    def reserve_nonce(self, intent_id: int, sender: str, floor: int, expected_epoch: int | None = None) -> int:
        with self._tx() as cur:
            epoch = self._ensure_sender(cur, sender)  # row lock: reservations of one sender are serialised
            if expected_epoch is not None and epoch != expected_epoch:
                raise FencingError(f"sender epoch is {epoch}, this keeper holds {expected_epoch}; not reserving")
            self._fence(cur, sender, epoch)  # and the lease at that epoch is ours and unexpired, in this transaction
            row = self._run(cur, "SELECT nonce, state FROM intents WHERE id = ? AND sender = ?", (intent_id, sender))
            found = row.fetchone()
            if found is None:
                raise KeyError(f"intent {intent_id} of this sender not in the journal")
            if found[0] is not None:
                return int(found[0])
            held = {
                int(r[0])
                for r in self._run(
                    cur, "SELECT nonce FROM intents WHERE sender = ? AND nonce >= ?", (sender, floor)
                ).fetchall()
            }
            nonce = floor
            while nonce in held:
                nonce += 1
            self._run(cur, "UPDATE intents SET nonce = ? WHERE id = ?", (nonce, intent_id))
            return nonce

    def add_attempt(self, intent_id: int, attempt: NewAttempt, expected: State, new: State) -> Attempt:
        check_transition(expected, new)
        with self._tx() as cur:
            self._fence_intent(cur, intent_id)  # signed bytes are stored only by the current leader
            found = self._run(
                cur, f"SELECT {_ATTEMPT_COLS} FROM attempts WHERE tx_hash = ?", (attempt.tx_hash,)
            ).fetchone()
            existing = None if found is None else _attempt_row(found)
            if existing is not None and (existing.intent_id != intent_id or existing.nonce != attempt.nonce):
                raise StaleStateError(f"attempt {attempt.tx_hash} is already stored for another intent or nonce")
            moved = self._run(
                cur,
                "UPDATE intents SET state = ? WHERE id = ? AND state = ? AND nonce = ?",
                (new.value, intent_id, expected.value, attempt.nonce),
            )
            if moved.rowcount != 1:
                now = self._run(cur, "SELECT state, nonce FROM intents WHERE id = ?", (intent_id,)).fetchone()
                replayed = now is not None and (now[0], _opt_int(now[1])) == (new.value, attempt.nonce)
                if existing is not None and replayed:
                    return existing  # the same bytes stored by an earlier call that already moved the intent
                raise StaleStateError(f"intent {intent_id}: not in state {expected} at nonce {attempt.nonce}")
            if existing is not None:  # identical bytes signed again (idempotent): one row, live again if refused
                if existing.status is not AttemptStatus.REJECTED:
                    return existing
                row = self._run(
                    cur,
                    f"UPDATE attempts SET status = ? WHERE id = ? RETURNING {_ATTEMPT_COLS}",
                    (AttemptStatus.SIGNED.value, existing.id),
                ).fetchone()
                return _attempt_row(row)
            seq_row = self._run(cur, "SELECT COALESCE(MAX(seq), 0) FROM attempts WHERE intent_id = ?", (intent_id,))
            seq = int(seq_row.fetchone()[0]) + 1
            row = self._run(
                cur,
                "INSERT INTO attempts (intent_id, seq, kind, nonce, tx_hash, raw, gas_limit, max_fee, priority_fee, "
                "gas_price, status, signed_block) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                f"RETURNING {_ATTEMPT_COLS}",
                (
                    intent_id,
                    seq,
                    attempt.kind,
                    attempt.nonce,
                    attempt.tx_hash,
                    _hex(attempt.raw),
                    attempt.gas_limit,
                    None if attempt.max_fee is None else str(attempt.max_fee),
                    None if attempt.priority_fee is None else str(attempt.priority_fee),
                    None if attempt.gas_price is None else str(attempt.gas_price),
                    AttemptStatus.SIGNED.value,
                    attempt.signed_block,
                ),
            ).fetchone()
            return _attempt_row(row)

    def mark_attempt(
        self,
        attempt_id: int,
        status: AttemptStatus,
        *,
        sent_block: int | None = None,
        route: str | None = None,
    ) -> Attempt:
        with self._tx() as cur:
            row = self._run(
                cur,
                "UPDATE attempts SET status = ?, route = COALESCE(?, route), "
                "first_sent_block = COALESCE(first_sent_block, ?), last_sent_block = COALESCE(?, last_sent_block) "
                f"WHERE id = ? RETURNING {_ATTEMPT_COLS}",
                (status.value, route, sent_block, sent_block, attempt_id),
            ).fetchone()
        if row is None:
            raise KeyError(f"attempt {attempt_id} not in the journal")
        return _attempt_row(row)

    def attempts(self, intent_id: int) -> list[Attempt]:
        with self._tx() as cur:
            sql = f"SELECT {_ATTEMPT_COLS} FROM attempts WHERE intent_id = ? ORDER BY seq"
            rows = self._run(cur, sql, (intent_id,))
            return [_attempt_row(r) for r in rows.fetchall()]

    def held_nonces(self, sender: str, at_least: int = 0) -> list[tuple[int, int, State]]:
        with self._tx() as cur:
            rows = self._run(
                cur,
                "SELECT nonce, id, state FROM intents WHERE sender = ? AND nonce >= ? ORDER BY nonce",
                (sender, at_least),
            ).fetchall()
        return [(int(r[0]), int(r[1]), State(r[2])) for r in rows]

    def epoch(self, sender: str) -> int:
        with self._tx() as cur:
            return self._ensure_sender(cur, sender)

    def set_epoch(self, sender: str, epoch: int) -> None:
        with self._tx() as cur:
            self._ensure_sender(cur, sender)
            self._fence_epoch(cur, epoch)  # only a live holder of the lease at `epoch` may install it
            self._run(cur, "UPDATE senders SET epoch = ? WHERE sender = ?", (epoch, sender))

    # --- fencing hooks (PostgresStore with a bound lease; no-ops otherwise) ------------------------------------
    def _fence(self, cur: _Cursor, sender: str, epoch: int | None) -> None:
        """Raise FencingError unless this process leads `sender` (at `epoch`, default: the sender's epoch)."""

    def _fence_intent(self, cur: _Cursor, intent_id: int) -> None:
        """`_fence` for the sender of `intent_id`."""

    def _fence_epoch(self, cur: _Cursor, epoch: int) -> None:
        """Raise FencingError unless this process holds the lease at `epoch`, unexpired."""

    # --- keeper state and records -----------------------------------------------------------------------
    def get_state(self, key: str) -> str | None:
        with self._tx() as cur:
            row = self._run(cur, "SELECT value FROM keeper_state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put_state(self, key: str, value: str) -> None:
        with self._tx() as cur:
            self._run(
                cur,
                "INSERT INTO keeper_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = ?",
                (key, value, value),
            )

    def add_record(self, kind: str, key: str, value: str) -> bool:
        with self._tx() as cur:
            inserted = self._run(
                cur,
                "INSERT INTO keeper_records (kind, record_key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (kind, record_key) DO NOTHING",
                (kind, key, value),
            )
            return bool(inserted.rowcount)

    def records(self, kind: str) -> list[tuple[str, str]]:
        with self._tx() as cur:
            rows = self._run(
                cur, "SELECT record_key, value FROM keeper_records WHERE kind = ? ORDER BY record_key", (kind,)
            ).fetchall()
        return [(str(k), str(v)) for k, v in rows]

    def close(self) -> None:
        raise NotImplementedError


BUSY_SECONDS = 30.0  # how long a SQLite open or write waits for another process's lock before it fails


class SqliteStore(SqlStore):
    """The embedded default: one file, WAL journal, writes serialised by BEGIN IMMEDIATE."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        # One connection shared by the daemon's threads; `_lock` serialises every transaction on it.
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_SECONDS, check_same_thread=False)
        self._lock = threading.RLock()
        self._set_up(timeout=BUSY_SECONDS)
        self._migrate()

    def _set_up(self, *, timeout: float) -> None:
        """Switch the file to WAL, retrying while another process holds it.

        SQLite does not call the busy handler for a journal-mode change that meets another connection's
        lock (two `keeper run` on one state directory, started together, both open a fresh file), so the
        connect timeout alone does not cover it: retry "database is locked" until `timeout`, then raise.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)
        self._conn.execute("PRAGMA synchronous=FULL")  # a reserved nonce survives power loss, not just kill -9
        self._conn.execute("PRAGMA foreign_keys=ON")

    @contextmanager
    def _tx(self) -> Iterator[_Cursor]:
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                cur.close()

    def close(self) -> None:
        self._conn.close()

    def __repr__(self) -> str:
        return f"SqliteStore(path={self.path!r})"


_URL_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]+@")


class PostgresStore(SqlStore):
    """PostgreSQL through psycopg 3; `schema` (created if missing) isolates tests and deployments."""

    pk_type = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    lock_suffix = " FOR UPDATE"

    def __init__(self, url: str, schema: str | None = None) -> None:
        import psycopg

        self._safe_url = _URL_PASSWORD.sub(r"\1***@", url)
        if schema is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
            raise ValueError("postgres schema: must match [a-z_][a-z0-9_]*")
        self.schema = schema
        self._url = url
        self._conn = psycopg.connect(url, autocommit=True)
        self._lock = threading.RLock()  # one connection shared by the daemon's threads
        self._lease: tuple[str, str] | None = None  # (lease name, holder) once bound: every send is fenced
        self._idle_timeout_ms = 0
        # two replicas starting at once: one creates the schema and migrates, the other waits and finds it done
        self._conn.execute("SELECT pg_advisory_lock(hashtext('keeper.migrate'))")
        try:
            if schema is not None:
                self._conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                self._conn.execute(f'SET search_path TO "{schema}"')
            self._migrate()
        finally:
            self._conn.execute("SELECT pg_advisory_unlock(hashtext('keeper.migrate'))")

    def _reconnect(self) -> None:
        """After the server ended the session (e.g. idle in a transaction past the lease while paused)."""
        import psycopg

        self._conn = psycopg.connect(self._url, autocommit=True)
        if self.schema is not None:
            self._conn.execute(f'SET search_path TO "{self.schema}"')
        if self._idle_timeout_ms:
            self._conn.execute(f"SET idle_in_transaction_session_timeout = {self._idle_timeout_ms}")

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    @contextmanager
    def _tx(self) -> Iterator[_Cursor]:
        with self._lock:
            if self._lease is not None and (self._conn.closed or self._conn.broken):
                self._reconnect()
            with self._conn.transaction(), self._conn.cursor() as cur:
                yield cur

    # --- fencing: the lease row (keeper.ha.lease, same database and schema) checked in the write's transaction
    def bind_lease(self, name: str, holder: str, ttl_seconds: float | None = None) -> None:
        """From now on, journalling an intent, reserving a nonce, storing a signed transaction and installing
        an epoch require `holder` to hold lease `name` (at the sender's epoch), unexpired on the database
        clock, checked in the same transaction (FENCE_SQL, FOR SHARE: a takeover waits for the commit).

        With `ttl_seconds` (the lease period) the server ends this session when it sits inside a transaction
        longer than that: a process paused while holding a row lock cannot hold up the standby's takeover
        (the session is reopened on the next use)."""
        self._lease = (name, holder)
        if ttl_seconds is not None:
            with self._lock:
                self._idle_timeout_ms = max(100, int(ttl_seconds * 1000))
                self._conn.execute(f"SET idle_in_transaction_session_timeout = {self._idle_timeout_ms}")

    def check_fence(self, sender: str, epoch: int) -> None:
        """FencingError unless the sender's epoch is `epoch` and this holder's lease at it is unexpired."""
        with self._tx() as cur:
            row = self._run(cur, "SELECT epoch FROM senders WHERE sender = ?", (sender,)).fetchone()
            current = int(row[0]) if row else 0
            if current != epoch:
                raise FencingError(f"sender epoch is {current}, this keeper holds {epoch}; not sending")
            self._fence(cur, sender, epoch)

    def _lease_live(self, cur: _Cursor, epoch: int) -> bool:
        assert self._lease is not None
        name, holder = self._lease
        params = {"lease": name, "holder": holder, "epoch": epoch}
        return cast(Any, cur).execute(FENCE_SQL, params).fetchone() is not None

    def _fence(self, cur: _Cursor, sender: str, epoch: int | None) -> None:
        if self._lease is None:
            return
        if epoch is None:
            row = self._run(cur, "SELECT epoch FROM senders WHERE sender = ?", (sender,)).fetchone()
            epoch = int(row[0]) if row else 0
        if not self._lease_live(cur, epoch):
            raise FencingError(
                f"lease {self._lease[0]!r} is not held by {self._lease[1]!r} at epoch {epoch} "
                "(expired or taken over); not writing"
            )

    def _fence_intent(self, cur: _Cursor, intent_id: int) -> None:
        if self._lease is None:
            return
        row = self._run(cur, "SELECT sender FROM intents WHERE id = ?", (intent_id,)).fetchone()
        if row is not None:
            self._fence(cur, str(row[0]), None)

    def _fence_epoch(self, cur: _Cursor, epoch: int) -> None:
        if self._lease is not None and not self._lease_live(cur, epoch):
            raise FencingError(f"lease {self._lease[0]!r} at epoch {epoch} is not held by {self._lease[1]!r}")

    def close(self) -> None:
        self._conn.close()

    def __repr__(self) -> str:
        return f"PostgresStore(url={self._safe_url!r}, schema={self.schema!r})"
