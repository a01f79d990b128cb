"""One contract suite for every journal backend: memory, SQLite (WAL) and PostgreSQL (when configured)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from keeper.store import MemoryStore, PostgresStore, SqliteStore, Store

PG_SKIP = "KEEPER_TEST_DATABASE_URL is not set: PostgreSQL journal tests skipped"


def pg_url() -> str | None:
    return os.environ.get("KEEPER_TEST_DATABASE_URL") or None


def drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """A callable opening (or re-opening) the same journal; closes everything and drops PG schemas after."""
    opened: list[Store] = []
    kind = request.param
    url = pg_url()
    if kind == "postgres" and url is None:
        pytest.skip(PG_SKIP)
    schema = f"keeper_test_{secrets.token_hex(6)}"
    memory = MemoryStore()

    def factory() -> Store:
        store: Store
        if kind == "memory":
            store = memory
        elif kind == "sqlite":
            store = SqliteStore(tmp_path / "journal.sqlite3")
        else:
            assert url is not None
            store = PostgresStore(url, schema=schema)
        opened.append(store)
        return store

    factory.kind = kind  # type: ignore[attr-defined]
    yield factory
    for store in opened:
        store.close()
    if kind == "postgres" and url is not None:
        drop_schema(url, schema)


@pytest.fixture
def store(store_factory: object) -> Store:
    return store_factory()  # type: ignore[operator, no-any-return]
