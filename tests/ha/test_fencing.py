"""Fencing in the journal's own transactions (PostgreSQL): a leader whose lease expired cannot journal an intent,
reserve a nonce, store a signed transaction, install its epoch or broadcast — even before a standby took over —
and the standby completes the intent from the shared journal exactly once (the stored bytes, the same nonce).

In process, deterministic: the "pause" is a sleep past a short lease at the worst moment (between storing the
signed transaction and sending it). The two-process versions are in test_failover.py.
"""

from __future__ import annotations

import time

import pytest

from keeper.devnet.anvil import DEV_ACCOUNTS
from keeper.execute.fakes import FakeChain
from keeper.execute.gas import GWEI, GasPolicy
from keeper.execute.metrics import ExecutionMetrics
from keeper.execute.pipeline import Pipeline, PipelineConfig
from keeper.ha.fence import FencedChain
from keeper.ha.lease import PostgresLease, Renewer, renew_interval
from keeper.store import FencingError, Intent, PostgresStore, State
from keeper.store.model import IntentRecord
from keeper.store.sql import MIGRATIONS
from tests.execute.conftest import dev_signer, fresh_address

SENDER = DEV_ACCOUNTS[0]
LEASE = "sender"


def replica(dsn: str, schema: str, holder: str, ttl: float) -> tuple[PostgresLease, PostgresStore]:
    lease = PostgresLease(dsn, LEASE, holder, ttl_seconds=ttl, schema=schema)
    lease.ensure_schema()
    store = PostgresStore(dsn, schema=schema)
    store.bind_lease(LEASE, holder)
    return lease, store


def lead(lease: PostgresLease, store: PostgresStore) -> int:
    """What the daemon does on gaining the lease: take it, install its epoch as the sender's fencing token."""
    got = lease.acquire()
    assert got.held
    store.set_epoch(SENDER, got.epoch)
    return got.epoch


def test_expired_lease_refuses_every_write_even_before_a_takeover(pg: tuple[str, str]) -> None:
    dsn, schema = pg
    lease, store = replica(dsn, schema, "a", ttl=0.5)
    try:
        epoch = lead(lease, store)
        first, _ = store.submit(Intent("one", to=fresh_address()), SENDER)
        second, _ = store.submit(Intent("two", to=fresh_address()), SENDER)
        assert store.reserve_nonce(first.id, SENDER, 0, expected_epoch=epoch) == 0
        store.check_fence(SENDER, epoch)
        time.sleep(0.7)  # paused past the lease; nobody has taken over: the sender's epoch is still ours
        assert store.epoch(SENDER) == epoch
        with pytest.raises(FencingError):
            store.reserve_nonce(second.id, SENDER, 0, expected_epoch=epoch)
        with pytest.raises(FencingError):
            store.submit(Intent("three", to=fresh_address()), SENDER)
        with pytest.raises(FencingError):
            store.check_fence(SENDER, epoch)
        assert store.get(second.id).nonce is None
        # the same holder renewing after expiry is a new term: a new epoch, installed, and writes resume
        renewed = lead(lease, store)
        assert renewed == epoch + 1
        with pytest.raises(FencingError):  # the old epoch stays fenced off
            store.reserve_nonce(second.id, SENDER, 0, expected_epoch=epoch)
        assert store.reserve_nonce(second.id, SENDER, 0, expected_epoch=renewed) == 1
    finally:
        store.close()


def test_a_stale_leader_cannot_reinstall_its_epoch(pg: tuple[str, str]) -> None:
    dsn, schema = pg
    lease_a, store_a = replica(dsn, schema, "a", ttl=0.4)
    lease_b, store_b = replica(dsn, schema, "b", ttl=5)
    try:
        old = lead(lease_a, store_a)
        time.sleep(0.5)
        new = lead(lease_b, store_b)
        assert new == old + 1
        with pytest.raises(FencingError):
            store_a.set_epoch(SENDER, old)  # the resumed leader's renewal thread raced the takeover
        assert store_b.epoch(SENDER) == new
        with pytest.raises(FencingError):
            store_a.check_fence(SENDER, new)  # not its lease, whatever the epoch
    finally:
        store_a.close()
        store_b.close()


def pipeline(store: PostgresStore, chain: FakeChain, epoch: int, on_persist: object = None) -> Pipeline:
    fenced = FencedChain(chain, lambda: store.check_fence(SENDER, epoch))
    return Pipeline(
        store,
        fenced,
        dev_signer(),
        PipelineConfig(chain_id=31337, confirmations=1, gas=GasPolicy(max_fee_cap=100 * GWEI), epoch=epoch),
        metrics=ExecutionMetrics(),
        on_persist=on_persist,  # type: ignore[arg-type]
    )


def test_leader_paused_between_signing_and_sending_never_sends_and_the_standby_sends_those_bytes_once(
    pg: tuple[str, str],
) -> None:
    dsn, schema = pg
    lease_a, store_a = replica(dsn, schema, "a", ttl=0.5)
    lease_b, store_b = replica(dsn, schema, "b", ttl=5)
    chain = FakeChain()
    try:
        epoch_a = lead(lease_a, store_a)

        def pause_after_signing(label: str, _record: IntentRecord) -> None:
            if label == "signed":
                time.sleep(0.7)  # SIGSTOP / GC pause: the lease expires while the signed bytes wait to go out

        a = pipeline(store_a, chain, epoch_a, pause_after_signing)
        record = a.submit(Intent("rebalance", to=fresh_address(), value=1))
        with pytest.raises(FencingError):
            a.tick()
        assert chain.sends == []  # nothing left the paused leader
        stored = store_a.attempts(record.id)
        assert store_a.get(record.id).state is State.SIGNED and len(stored) == 1 and stored[0].nonce == 0

        # the standby takes over and resumes from the shared journal: it sends the stored bytes, nothing else
        epoch_b = lead(lease_b, store_b)
        b = pipeline(store_b, chain, epoch_b)
        b.reconcile()
        for _ in range(10):
            if not b.tick():
                break
            chain.mine()
        done = store_b.get(record.id)
        assert done.terminal and done.outcome == "success" and done.nonce == 0
        assert {h for h, _ in chain.sends} == {stored[0].tx_hash}
        assert [t.tx_hash for t in chain.mined] == [stored[0].tx_hash] and chain.nonces[SENDER.lower()] == 1

        # the old leader resumes: it can neither plan, nor reserve, nor send
        with pytest.raises(FencingError):
            a.submit(Intent("late", to=fresh_address(), value=1))
        assert a.tick() == [] and len(chain.sends) == 1
    finally:
        store_a.close()
        store_b.close()


def test_renewer_keeps_a_short_lease_alive_and_stops(pg: tuple[str, str]) -> None:
    dsn, schema = pg
    lease_a = PostgresLease(dsn, LEASE, "a", ttl_seconds=0.6, schema=schema)
    lease_b = PostgresLease(dsn, LEASE, "b", ttl_seconds=0.6, schema=schema)
    lease_a.ensure_schema()
    seen: list[bool] = []
    renewer = Renewer(lambda: seen.append(lease_a.acquire().held), renew_interval(0.6, poll_seconds=1.0))
    assert renewer.interval == pytest.approx(0.2)
    assert lease_a.acquire().held
    renewer.start()
    try:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            assert not lease_b.acquire().held  # renewed every 0.2 s: never expires
            time.sleep(0.1)
    finally:
        renewer.stop()
    assert len(seen) >= 5 and all(seen)
    time.sleep(0.8)
    assert lease_b.acquire().held  # stopped renewing: the standby takes over after one lease period
    lease_a.release()
    lease_b.release()


def test_a_leader_paused_inside_a_transaction_cannot_hold_up_the_takeover(pg: tuple[str, str]) -> None:
    import threading

    dsn, schema = pg
    lease_a, store_a = replica(dsn, schema, "a", ttl=0.5)
    store_a.bind_lease(LEASE, "a", ttl_seconds=0.5)  # as the daemon binds it: idle-in-transaction limit = lease
    lease_b, store_b = replica(dsn, schema, "b", ttl=5)
    errors: list[BaseException] = []

    def paused_mid_reservation() -> None:
        try:
            with store_a._tx() as cur:  # the row lock a nonce reservation takes, then SIGSTOP
                store_a._run(cur, "SELECT epoch FROM senders WHERE sender = ? FOR UPDATE", (SENDER,))
                time.sleep(1.5)
        except Exception as exc:  # the server ended the session: the lock is gone
            errors.append(exc)

    try:
        lead(lease_a, store_a)
        holder = threading.Thread(target=paused_mid_reservation)
        holder.start()
        time.sleep(0.6)  # a's lease has expired; its session still holds the sender row
        started = time.monotonic()
        new = lead(lease_b, store_b)  # set_epoch needs that row: waits only until the server ends a's session
        assert time.monotonic() - started < 1.0
        holder.join(5)
        assert errors, "the paused transaction should have been terminated"
        with pytest.raises(FencingError):
            store_a.check_fence(SENDER, new)  # a reconnects on its next use, and is fenced off
    finally:
        store_a.close()
        store_b.close()


def test_replicas_starting_together_do_not_race_on_the_schema(pg: tuple[str, str]) -> None:
    import threading

    dsn, schema = pg
    url = f"{dsn}{'&' if '?' in dsn else '?'}options=-csearch_path%3D{schema}"  # as the daemons get it
    errors: list[BaseException] = []
    stores: list[PostgresStore] = []
    gate = threading.Barrier(4)

    def start() -> None:
        try:
            gate.wait()
            stores.append(PostgresStore(url))
            PostgresLease(url, LEASE, "x", ttl_seconds=1).ensure_schema()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert errors == [] and len(stores) == 4
        assert {s.schema_version() for s in stores} == {len(MIGRATIONS)}
    finally:
        for s in stores:
            s.close()
