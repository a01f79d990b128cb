"""Two `keeper run` on one state directory open the same fresh SQLite journal at once: neither may crash."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from keeper.store import SqliteStore

ROUNDS = 40
PROCESSES = 4


def _open_each_round(folder: str, barrier: object, failures: object) -> None:
    count = 0
    for r in range(ROUNDS):
        barrier.wait()  # type: ignore[attr-defined]
        try:
            SqliteStore(Path(folder) / f"journal-{r}.sqlite3").close()
        except Exception as exc:  # the test counts every way an open can fail
            count += 1
            print(f"round {r}: {type(exc).__name__}: {exc}")
    failures.put(count)  # type: ignore[attr-defined]


def test_processes_opening_one_fresh_journal_together_all_succeed(tmp_path: Path) -> None:
    # Before the set-up retried, 4 processes opening a fresh file together hit "database is locked" on
    # `PRAGMA journal_mode=WAL` in about one open in ten (SQLite skips the busy handler for that change).
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(PROCESSES)
    failures = ctx.Queue()
    procs = [ctx.Process(target=_open_each_round, args=(str(tmp_path), barrier, failures)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    counts = [failures.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert sum(counts) == 0, counts
    for r in range(ROUNDS):
        store = SqliteStore(tmp_path / f"journal-{r}.sqlite3")
        try:
            assert store.records("any") == []
        finally:
            store.close()
