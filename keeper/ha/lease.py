"""Leadership for the single sender: a file lock (embedded mode) or a PostgreSQL lease with fencing.

Embedded: an exclusive `flock` on `<state_dir>/keeper.lock`; a second process on the same state dir
cannot take it and refuses to send, naming the holder's pid.

PostgreSQL: one row per lease name `(name, holder, epoch, expires_at)`. The leader renews before
expiry (every `Renewer` interval, a fraction of the lease period); a standby takes the row over when it
has expired, incrementing the epoch. Time is the database's clock, never the replicas'. The epoch is
the fencing token: the journal checks FENCE_SQL (this holder, this epoch, unexpired on the database
clock) in the same transaction that journals an intent, reserves a nonce or stores a signed
transaction, and once more immediately before a broadcast (keeper.ha.fence), so a leader paused past
its lease (GC pause, SIGSTOP) can neither reserve, nor store, nor send after it resumes — whether or
not a standby has taken over yet.
Owns leadership state only; must not sign or send.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from keeper import log
from keeper.errors import ConfigError

_log = log.get("keeper.ha")


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

# Checked inside the journal's write transactions (the fencing token). `clock_timestamp()`, not `now()`:
# `now()` is the transaction's start, and a process paused inside a transaction must not be judged by it.
# FOR SHARE: a takeover (an UPDATE of the row) waits until the checking transaction has committed.
FENCE_SQL = (
    "SELECT 1 FROM keeper_leases WHERE name = %(lease)s AND holder = %(holder)s AND epoch = %(epoch)s "
    "AND expires_at > clock_timestamp() FOR SHARE"
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
        self._conn: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def holder(self) -> str:
        return self._holder

    @property
    def ttl_seconds(self) -> float:
        return self._ttl

    def _connect(self) -> Any:
        conn = self._psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
        if self._schema:
            conn.execute(f'SET search_path TO "{self._schema}"')
        # a renewal that hangs longer than the lease is worthless: fail it, the caller steps down
        conn.execute(f"SET statement_timeout = {max(100, int(self._ttl * 1000))}")
        return conn

    def _execute(self, sql: str, params: Any, *, fetch: bool = False) -> Any:
        """One statement on the kept connection (reconnecting after a failure); its first row when `fetch`."""
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            try:
                cur = self._conn.execute(sql, params)
                return cur.fetchone() if fetch else None
            except Exception:
                self._close()
                raise

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:  # already broken; nothing to keep
                _log.debug("lease connection close failed", error=str(exc))

    def ensure_schema(self) -> None:
        """Create the lease table; serialised, as replicas starting together would race on the DDL."""
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            try:
                with self._conn.transaction():
                    self._conn.execute("SELECT pg_advisory_xact_lock(hashtext('keeper.leases'))")
                    self._conn.execute(LEASE_DDL)
            except Exception:
                self._close()
                raise

    def acquire(self) -> Leadership:
        row = self._execute(_ACQUIRE, {"name": self._name, "holder": self._holder, "ttl": self._ttl}, fetch=True)
        if row is not None:
            self._epoch = int(row[1])
            return Leadership(True, self._holder, self._epoch, f"lease {self._name} epoch {self._epoch}")
        self._epoch = 0
        current = self._execute(
            "SELECT holder, epoch, expires_at FROM keeper_leases WHERE name = %s", (self._name,), fetch=True
        )
        holder, epoch, expires = current if current else ("?", 0, "?")
        return Leadership(False, str(holder), int(epoch), f"standby: lease held by {holder} until {expires}")

    def release(self) -> None:
        """Give the lease up early (clean shutdown) so the standby need not wait for expiry."""
        try:
            if self._epoch:
                self._execute(
                    "UPDATE keeper_leases SET expires_at = clock_timestamp() "
                    "WHERE name = %s AND holder = %s AND epoch = %s",
                    (self._name, self._holder, self._epoch),
                )
        finally:
            self._epoch = 0
            with self._lock:
                self._close()

    def fence(self) -> dict[str, Any]:
        """Parameters for FENCE_SQL: this holder's current epoch."""
        return {"lease": self._name, "holder": self._holder, "epoch": self._epoch}


class Renewer:
    """Calls `refresh` every `interval` seconds on its own thread (lease renewal / standby polling).

    Its own thread, not the scheduler's: a slow tick (an RPC timeout, a long simulation) must neither let
    the leader's lease lapse nor delay a standby's takeover. `refresh` must not raise; if it does, the
    error is logged and the next interval retries.
    """

    def __init__(self, refresh: Callable[[], None], interval: float) -> None:
        self._refresh = refresh
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="keeper-lease", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._refresh()
            except Exception as exc:  # never let the renewal thread die silently
                _log.exception("leadership refresh failed", error=f"{exc.__class__.__name__}: {exc}")

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


def renew_interval(lease_seconds: float | None, poll_seconds: float) -> float:
    """Renew (or poll, as a standby) every poll interval, and at least three times per lease period."""
    if lease_seconds is None:
        return poll_seconds
    return max(0.05, min(poll_seconds, lease_seconds / 3))
