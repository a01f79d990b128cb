"""Leadership: one file-lock holder per state dir; PostgreSQL lease takeover, epochs and fencing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from keeper.ha.lease import FENCE_SQL, FileLease, PostgresLease


def test_second_file_lease_refuses_and_names_holder(tmp_path: Path) -> None:
    first = FileLease(tmp_path, "replica-a")
    assert first.acquire().held
    # a second process on the same state dir cannot take it
    code = (
        "import sys; from pathlib import Path; from keeper.ha.lease import FileLease;"
        f"l = FileLease(Path({str(tmp_path)!r}), 'replica-b').acquire(); print(l.held, '|', l.detail)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    held, detail = out.stdout.strip().split(" | ")
    assert held == "False"
    assert f"replica-a pid {os.getpid()}" in detail and "not sending" in detail
    first.release()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.startswith("True")


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    dsn = os.environ.get("KEEPER_TEST_DATABASE_URL")
    if not dsn:
        pytest.skip("KEEPER_TEST_DATABASE_URL is not set: PostgreSQL lease tests skipped")
    import psycopg

    schema = f"keeper_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield dsn, schema
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_postgres_lease_takeover_after_expiry_bumps_epoch(pg_schema: tuple[str, str]) -> None:
    dsn, schema = pg_schema
    a = PostgresLease(dsn, "sender", "a", ttl_seconds=0.6, schema=schema)
    b = PostgresLease(dsn, "sender", "b", ttl_seconds=0.6, schema=schema)
    a.ensure_schema()
    first = a.acquire()
    assert first.held and first.epoch == 1
    standby = b.acquire()
    assert not standby.held and standby.holder == "a"
    assert a.acquire().epoch == 1  # renewal keeps the epoch
    time.sleep(0.8)  # a pauses past its lease
    taken = b.acquire()
    assert taken.held and taken.epoch == 2
    back = a.acquire()  # the old leader resumes: it must not lead
    assert not back.held and back.holder == "b"


def test_fence_rejects_a_stale_epoch_in_the_same_transaction(pg_schema: tuple[str, str]) -> None:
    import psycopg

    dsn, schema = pg_schema
    a = PostgresLease(dsn, "sender", "a", ttl_seconds=0.5, schema=schema)
    b = PostgresLease(dsn, "sender", "b", ttl_seconds=5, schema=schema)
    a.ensure_schema()
    assert a.acquire().held
    stale = a.fence()
    with psycopg.connect(dsn) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        assert conn.execute(FENCE_SQL, stale).fetchone() == (1,)
    time.sleep(0.6)
    assert b.acquire().held
    with psycopg.connect(dsn) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        assert conn.execute(FENCE_SQL, stale).fetchone() is None  # paused leader is fenced off
        assert conn.execute(FENCE_SQL, b.fence()).fetchone() == (1,)


def test_clean_release_lets_standby_take_over_at_once(pg_schema: tuple[str, str]) -> None:
    dsn, schema = pg_schema
    a = PostgresLease(dsn, "sender", "a", ttl_seconds=60, schema=schema)
    b = PostgresLease(dsn, "sender", "b", ttl_seconds=60, schema=schema)
    a.ensure_schema()
    assert a.acquire().held and not b.acquire().held
    a.release()
    assert b.acquire().held
