"""Leadership for the single sender: a file lock (embedded mode) or a PostgreSQL lease with fencing.

Embedded: an exclusive `flock` on `<state_dir>/keeper.lock`; a second process on the same state dir
cannot take it and refuses to send, naming the holder's pid.

PostgreSQL: one row per lease name `(name, holder, epoch, expires_at)`. The leader renews before
expiry; a standby takes the row over when it has expired, incrementing the epoch. Time is the
database's clock (`now()`), never the replicas'. The epoch is the fencing token: the journal checks
`fence_sql` in the same transaction that reserves a nonce, so a leader paused past its lease (GC pause,
SIGSTOP) cannot reserve a nonce — and therefore cannot sign — after it resumes.
Owns leadership state only; must not sign or send.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from keeper.errors import ConfigError


@dataclass(frozen=True)
class Leadership:
    held: bool
    holder: str
    epoch: int
    detail: str


class Lease(Protocol):
    def acquire(self) -> Leadership: ...  # take or renew; never blocks for long
    def release(self) -> None: ...


class FileLease:
    """An exclusive advisory lock on a file in the state directory (one instance per state dir)."""

    def __init__(self, state_dir: Path, holder: str) -> None:
        self._path = state_dir / "keeper.lock"
        self._holder = holder
        self._fd: int | None = None

    def acquire(self) -> Leadership:
        if self._fd is not None:
            return Leadership(True, self._holder, 1, f"file lock {self._path}")
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            return Leadership(False, other, 0, f"state dir {self._path.parent} is locked by {other}; not sending")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{self._holder} pid {os.getpid()}".encode(), 0)
        self._fd = fd
        return Leadership(True, self._holder, 1, f"file lock {self._path}")

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


LEASE_DDL = """
CREATE TABLE IF NOT EXISTS keeper_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
)
"""

# Take the lease when free, expired, or already ours; a takeover increments the epoch.
_ACQUIRE = """
INSERT INTO keeper_leases AS l (name, holder, epoch, expires_at)
VALUES (%(name)s, %(holder)s, 1, now() + make_interval(secs => %(ttl)s))
ON CONFLICT (name) DO UPDATE
SET holder = EXCLUDED.holder,
    epoch = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > now() THEN l.epoch ELSE l.epoch + 1 END,
    expires_at = EXCLUDED.expires_at
WHERE l.holder = EXCLUDED.holder OR l.expires_at <= now()
RETURNING holder, epoch
"""

# Checked inside the journal's nonce-reservation transaction (the fencing token).
FENCE_SQL = (
    "SELECT 1 FROM keeper_leases WHERE name = %(lease)s AND holder = %(holder)s AND epoch = %(epoch)s "
    "AND expires_at > now() FOR SHARE"
)


class PostgresLease:
    """A lease row renewed by the leader; `ttl_seconds` is the lease period."""

    def __init__(self, dsn: str, name: str, holder: str, ttl_seconds: float, *, schema: str | None = None) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - psycopg is a declared dependency
            raise ConfigError("store.database_url: psycopg is not installed") from exc
        self._psycopg: Any = psycopg
        self._dsn = dsn
        self._name = name
        self._holder = holder
        self._ttl = ttl_seconds
        self._schema = schema
        self._epoch = 0

    def _connect(self) -> Any:
        conn = self._psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
        if self._schema:
            conn.execute(f'SET search_path TO "{self._schema}"')
        return conn

    def ensure_schema(self) -> None:
        with self._connect() as conn:
            conn.execute(LEASE_DDL)

    def acquire(self) -> Leadership:
        with self._connect() as conn:
            row = conn.execute(_ACQUIRE, {"name": self._name, "holder": self._holder, "ttl": self._ttl}).fetchone()
            if row is not None:
                self._epoch = int(row[1])
                return Leadership(True, self._holder, self._epoch, f"lease {self._name} epoch {self._epoch}")
            current = conn.execute(
                "SELECT holder, epoch, expires_at FROM keeper_leases WHERE name = %s", (self._name,)
            ).fetchone()
        self._epoch = 0
        holder, epoch, expires = current if current else ("?", 0, "?")
        return Leadership(False, str(holder), int(epoch), f"standby: lease held by {holder} until {expires}")

    def release(self) -> None:
        """Give the lease up early (clean shutdown) so the standby need not wait for expiry."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE keeper_leases SET expires_at = now() WHERE name = %s AND holder = %s AND epoch = %s",
                (self._name, self._holder, self._epoch),
            )
        self._epoch = 0

    def fence(self) -> dict[str, Any]:
        """Parameters for FENCE_SQL: this holder's current epoch."""
        return {"lease": self._name, "holder": self._holder, "epoch": self._epoch}
