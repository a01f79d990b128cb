"""Fixtures for the leadership tests: a fresh PostgreSQL schema per test (skipped without a database)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

PG_SKIP = "KEEPER_TEST_DATABASE_URL is not set: PostgreSQL lease/fencing/failover tests skipped"


@pytest.fixture
def pg() -> Iterator[tuple[str, str]]:
    """(dsn, schema): a schema created for this test and dropped (with everything in it) after it."""
    dsn = os.environ.get("KEEPER_TEST_DATABASE_URL")
    if not dsn:
        pytest.skip(PG_SKIP)
    import psycopg

    schema = f"keeper_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield dsn, schema
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
