"""The intent journal: durable record of every intent, its nonce and every signed transaction.

`open_store(url)` picks the backend: a PostgreSQL URL → PostgresStore, anything else → SqliteStore file path,
":memory:" → MemoryStore.
"""

from __future__ import annotations

from pathlib import Path

from keeper.store.base import FencingError, StaleStateError, Store
from keeper.store.memory import MemoryStore
from keeper.store.model import (
    Attempt,
    AttemptStatus,
    ExpectedEvent,
    Intent,
    IntentRecord,
    InvalidTransition,
    NewAttempt,
    State,
    idempotency_key,
)
from keeper.store.sql import PostgresStore, SqliteStore


def open_store(url: str | Path, *, schema: str | None = None) -> Store:
    text = str(url)
    if text.startswith(("postgres://", "postgresql://")):
        return PostgresStore(text, schema=schema)
    if text == ":memory:":
        return MemoryStore()
    return SqliteStore(text)


__all__ = [
    "Attempt",
    "AttemptStatus",
    "ExpectedEvent",
    "FencingError",
    "Intent",
    "IntentRecord",
    "InvalidTransition",
    "MemoryStore",
    "NewAttempt",
    "PostgresStore",
    "SqliteStore",
    "StaleStateError",
    "State",
    "Store",
    "idempotency_key",
    "open_store",
]
