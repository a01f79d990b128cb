"""Two `keeper run` processes against one anvil: one signs, the other stands by.

With PostgreSQL (KEEPER_TEST_DATABASE_URL; a fresh schema per test through the DSN's search_path):
1. SIGKILL the leader while its rebalance is in the mempool → the standby takes over within two lease
   periods and completes that intent from the shared journal exactly once;
2. SIGSTOP the leader past its lease → the standby takes over; SIGCONT → the old leader steps down and
   sends nothing;
3. both started at once with a rebalance due → exactly one leads, is ready, signs and sends; the chain shows
   one effect per intent; a clean SIGTERM hands over at once.
Embedded (no database): 4. a second process on the same state dir refuses to send and says why.

Lease 2 s, poll 0.2 s. Every process is killed by pid in the fixture's teardown, before the chain is reverted.
Every replica's log, /metrics scrape and /readyz answer goes to the session's secret scan.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from keeper.config import render_toml
from keeper.devnet.anvil import free_port, rpc
from keeper.devnet.market import Market
from keeper.devnet.session import devnet_config
from tests.faults.plugin import SCAN

pytestmark = pytest.mark.anvil

LEASE = 2.0
POLL = 0.2
SENDING_EVENTS = {"intent.planned", "intent.signed", "intent.broadcast", "intent.rebroadcast", "rebalance submitted"}
PRICES = {"USDC": Decimal(1), "WETH": Decimal(3000), "WBTC": Decimal(60000)}


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if not line.startswith("#") and head == name:
            return float(value)
    return None


@dataclass
class Replica:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    may_exit: bool = False

    def leader(self) -> float | None:
        code, text = get(self.url + "/metrics")
        SCAN.add_text("/metrics scrapes", f"ha {self.name} /metrics", text)
        return metric(text, "keeper_leader") if code == 200 else None

    def ready(self) -> tuple[int, dict[str, Any]]:
        code, text = get(self.url + "/readyz")
        SCAN.add_text("health answers", f"ha {self.name} /readyz", text)
        return code, (json.loads(text) if text.startswith("{") else {})

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        out = []
        with self.log_path.open("rb") as f:
            f.seek(since)
            for line in f.read().decode(errors="replace").splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append({"event": line})
        return out

    def tail(self) -> str:
        return f"--- {self.name} (pid {self.proc.pid}) ---\n" + self.log_path.read_text()[-2500:]


@dataclass
class Cluster:
    anvil: Any
    w3: Any
    deployment: Any
    tmp_path: Path
    replicas: list[Replica] = field(default_factory=list)

    def start(self, name: str, dsn: str | None, state_dir: Path | None = None) -> Replica:
        port = free_port()
        config = devnet_config(self.anvil, self.deployment)
        config["state_dir"] = str(state_dir or self.tmp_path / f"state-{name}")
        config["metrics"] = {"host": "127.0.0.1", "port": port}
        config["schedule"] = {"poll_seconds": POLL, "in_flight_seconds": POLL, "grace_seconds": 5}
        config["chain"] = {**config["chain"], "confirmations": 1}  # type: ignore[dict-item]
        if dsn is not None:
            config["store"] = {"database_url": dsn, "lease_seconds": LEASE}
        path = self.tmp_path / f"keeper-{name}.toml"
        path.write_text(render_toml(config))
        log_path = self.tmp_path / f"keeper-{name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "keeper.cli", "run", "--config", str(path)], stdout=log, stderr=subprocess.STDOUT
            )
        SCAN.add_file("daemon logs", f"ha {name} log", log_path)
        replica = Replica(name, proc, f"http://127.0.0.1:{port}", log_path)
        self.replicas.append(replica)
        return replica

    def logs(self) -> str:
        return "\n".join(r.tail() for r in self.replicas)

    def wait(self, cond: Callable[[], bool], what: str, timeout: float = 20, mine: bool = True) -> float:
        """Poll `cond` every 0.05 s (mining a block every 0.3 s when `mine`); the seconds it took."""
        started = last_mined = time.monotonic()
        while time.monotonic() - started < timeout:
            for r in self.replicas:
                if not r.may_exit and r.proc.poll() is not None:
                    pytest.fail(f"{r.name} exited early ({r.proc.returncode}):\n{self.logs()}")
            if cond():
                return time.monotonic() - started
            if mine and time.monotonic() - last_mined >= 0.3:
                rpc(self.anvil.url, "evm_mine")
                last_mined = time.monotonic()
            time.sleep(0.05)
        pytest.fail(f"timed out after {timeout}s waiting for {what}:\n{self.logs()}")

    def one_leader(self, replicas: list[Replica]) -> tuple[Replica, Replica]:
        """Wait until exactly one of two replicas leads; (leader, standby)."""
        self.wait(lambda: sorted(r.leader() or 0 for r in replicas) == [0, 1], "exactly one leader", 30)
        leader = next(r for r in replicas if r.leader() == 1)
        return leader, next(r for r in replicas if r is not leader)

    def kill_all(self) -> None:
        for r in self.replicas:
            if r.proc.poll() is None:
                r.proc.kill()  # SIGKILL by pid; also ends a SIGSTOPped process
            r.proc.wait(timeout=10)


@pytest.fixture
def cluster(anvil: Any, w3: Any, deployment: Any, chain: None, tmp_path: Path) -> Iterator[Cluster]:
    group = Cluster(anvil, w3, deployment, tmp_path)
    try:
        yield group
    finally:
        group.kill_all()
        rpc(anvil.url, "evm_setAutomine", [True])


def schema_dsn(dsn: str, schema: str) -> str:
    """Both connections of a replica (journal and lease) land in the test's schema through libpq options."""
    return f"{dsn}{'&' if '?' in dsn else '?'}options=-csearch_path%3D{schema}"


class Journal:
    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn = schema_dsn(dsn, schema)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            try:
                return list(conn.execute(sql).fetchall())
            except psycopg.errors.UndefinedTable:
                return []

    def intents(self) -> list[tuple[Any, ...]]:
        return self.query("SELECT id, kind, state, nonce, outcome, mined_tx_hash FROM intents ORDER BY id")

    def attempts(self, intent_id: int | None = None) -> list[tuple[Any, ...]]:
        where = "" if intent_id is None else f" WHERE intent_id = {int(intent_id)}"
        return self.query(f"SELECT intent_id, nonce, tx_hash FROM attempts{where} ORDER BY id")

    def open_intents(self) -> list[tuple[Any, ...]]:
        """Intents the keeper still tracks (it waits for finality before planning the next rebalance)."""
        return [i for i in self.intents() if i[2] not in ("finalized", "failed", "cancelled")]


def rebalances(c: Any) -> int:
    count: int = c("VaultManager").functions.rebalanceCount().call()
    return count


def settle(cluster: Cluster, journal: Journal, c: Any, seconds: float = 2.0, timeout: float = 25) -> int:
    """Nothing open in the journal and no rebalance for `seconds` (follow-ups included); the rebalance count.

    anvil's `finalized` is 64 blocks behind: a confirmed intent gets its finality in one `anvil_mine` burst."""
    state = {"count": rebalances(c), "since": time.monotonic(), "burst": 0.0}

    def quiet() -> bool:
        now = rebalances(c)
        still_open = journal.open_intents()
        if now != state["count"] or still_open:
            state.update(count=now, since=time.monotonic())
        if any(i[2] == "confirmed" for i in still_open) and time.monotonic() - state["burst"] > 1.0:
            rpc(cluster.anvil.url, "anvil_mine", ["0x41"])
            state["burst"] = time.monotonic()
        return time.monotonic() - state["since"] >= seconds

    cluster.wait(quiet, "a quiet chain and journal", timeout)
    return rebalances(c)


def move_market_pending(cluster: Cluster, c: Any, **moves: Decimal) -> None:
    """With automine off: one block with fresh feed answers (so the keeper's rebalance stays in the mempool)."""
    prices = {**PRICES, **moves}
    rpc(cluster.anvil.url, "evm_increaseTime", [60])
    for symbol, usd in prices.items():
        c(f"feed:{symbol}").functions.setAnswer(int(usd * 10**8)).transact({"from": cluster.deployment.owner})
    rpc(cluster.anvil.url, "evm_mine")


def keeper_txs(cluster: Cluster, from_block: int) -> list[Any]:
    keeper = cluster.deployment.keeper.lower()
    out = []
    for number in range(from_block + 1, cluster.w3.eth.block_number + 1):
        for tx in cluster.w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if str(tx["from"]).lower() == keeper:
                out.append(tx)
    return out


def audit(cluster: Cluster, journal: Journal, start_nonce: int, start_block: int) -> dict[str, Any]:
    """Exactly once, from the chain's side: one mined transaction per journalled nonce, contiguous, all journalled."""
    intents = journal.intents()
    nonces = sorted(i[3] for i in intents if i[3] is not None)
    final_nonce = cluster.w3.eth.get_transaction_count(cluster.deployment.keeper)
    assert nonces == list(range(start_nonce, final_nonce)), (nonces, start_nonce, final_nonce)
    txs = keeper_txs(cluster, start_block)
    assert sorted(int(tx["nonce"]) for tx in txs) == nonces  # one transaction per nonce, none outside the journal
    journalled = {a[2].lower() for a in journal.attempts()}
    mined = {"0x" + tx["hash"].hex().removeprefix("0x").lower() for tx in txs}
    assert mined <= journalled
    by_nonce = {i[3]: i for i in intents if i[3] is not None}
    for tx in txs:
        assert str(by_nonce[int(tx["nonce"])][5]).lower() == "0x" + tx["hash"].hex().removeprefix("0x").lower()
    successes = [i for i in intents if i[1] == "call" and i[4] == "success"]
    return {"intents": intents, "successes": successes, "mined": mined}


def signed_hashes(events: list[dict[str, Any]]) -> set[str]:
    return {str(e.get("tx_hash", "")).lower() for e in events if e.get("event") == "intent.signed"}


def broadcast_intent(journal: Journal) -> int | None:
    for intent_id, kind, state, *_ in journal.intents():
        if kind == "call" and state == "broadcast":
            return int(intent_id)
    return None


def test_sigkill_leader_mid_intent_standby_completes_it_exactly_once(
    pg: tuple[str, str], cluster: Cluster, c: Any, record: Any
) -> None:
    dsn = schema_dsn(*pg)
    journal = Journal(*pg)
    start_nonce = cluster.w3.eth.get_transaction_count(cluster.deployment.keeper)  # audited from here on
    start_block = cluster.w3.eth.block_number
    a, b = cluster.start("a", dsn), cluster.start("b", dsn)
    leader, standby = cluster.one_leader([a, b])
    before = settle(cluster, journal, c)

    rpc(cluster.anvil.url, "evm_setAutomine", [False])
    move_market_pending(cluster, c, WETH=Decimal(3360))  # +12%: a delta-drift rebalance
    cluster.wait(lambda: broadcast_intent(journal) is not None, "the leader's rebalance in the mempool", mine=False)
    intent_id = broadcast_intent(journal)
    assert intent_id is not None and rebalances(c) == before  # signed and sent, not mined

    leader.may_exit = True
    leader.proc.kill()
    leader.proc.wait(timeout=10)
    failover = cluster.wait(lambda: standby.leader() == 1, "the standby to take over", 3 * LEASE, mine=False)
    assert failover <= 2 * LEASE, f"failover took {failover:.2f}s"
    assert standby.ready()[0] == 200
    # the new leader reconciles the shared journal while the old leader's transaction is still in the mempool
    cluster.wait(lambda: any(e.get("event") == "reconcile.plan" for e in standby.events()), "reconcile", mine=False)
    plan = next(e for e in standby.events() if e.get("event") == "reconcile.plan")
    nonce = {i[0]: i for i in journal.intents()}[intent_id][3]
    assert plan["pending_nonce"] == plan["latest_nonce"] + 1 == nonce + 1, plan  # pending, not mined
    assert any(step.startswith(f"{nonce}:") for step in plan["steps"]), plan
    assert rebalances(c) == before
    rpc(cluster.anvil.url, "evm_setAutomine", [True])

    def completed() -> bool:
        done = {i[0]: i for i in journal.intents()}[intent_id]
        return done[2] in ("confirmed", "finalized") and done[4] == "success"

    completion = cluster.wait(completed, "the standby to complete the intent")
    after = settle(cluster, journal, c)
    result = audit(cluster, journal, start_nonce, start_block)
    assert len(journal.attempts(intent_id)) == 1  # the standby sent the stored bytes; it signed nothing new for it
    assert intent_id in {i[0] for i in result["successes"]}
    new_successes = [i for i in result["successes"] if i[0] >= intent_id]  # the schema is this test's own
    assert after - before == len(new_successes) >= 1  # one rebalance per successful intent: no duplicate
    events = standby.events()
    assert not (signed_hashes(events) & {a[2].lower() for a in journal.attempts(intent_id)})
    assert "Traceback" not in standby.log_path.read_text()
    observed = (f"takeover {failover:.2f}s after the kill (lease {LEASE}s), the stored transaction confirmed "
                f"{completion:.2f}s later, 1 attempt for the intent; rebalanceCount {before}→{after}, new successes "
                f"{len(new_successes)}: no duplicate")
    print("\nSIGKILL: " + observed)  # the timings for the report (pytest -s)
    record("ha.leader_killed_mid_intent", "SIGKILL of the leader (PostgreSQL lease) with its rebalance in the mempool",
           "once", "the standby takes over within two lease periods and completes the intent exactly once", observed)


def test_sigstopped_leader_steps_down_after_sigcont_without_sending(  # noqa: PLR0917
    pg: tuple[str, str], cluster: Cluster, c: Any, w3: Any, deployment: Any, record: Any
) -> None:
    dsn = schema_dsn(*pg)
    journal = Journal(*pg)
    start_nonce = cluster.w3.eth.get_transaction_count(deployment.keeper)
    start_block = cluster.w3.eth.block_number
    a, b = cluster.start("a", dsn), cluster.start("b", dsn)
    old, new = cluster.one_leader([a, b])
    before = settle(cluster, journal, c)

    rpc(cluster.anvil.url, "evm_setAutomine", [False])
    move_market_pending(cluster, c, WETH=Decimal(3360))
    cluster.wait(lambda: broadcast_intent(journal) is not None, "the leader's rebalance in the mempool", mine=False)
    intent_id = broadcast_intent(journal)
    old.proc.send_signal(signal.SIGSTOP)  # paused with an intent in flight and its lease about to lapse
    stopped = time.monotonic()
    failover = cluster.wait(lambda: new.leader() == 1, "the standby to take over", 3 * LEASE, mine=False)
    assert failover <= 2 * LEASE, f"failover took {failover:.2f}s"
    rpc(cluster.anvil.url, "evm_setAutomine", [True])
    cluster.wait(
        lambda: {i[0]: i for i in journal.intents()}[intent_id][4] == "success", "the new leader to complete it"
    )
    mid = settle(cluster, journal, c)
    assert mid > before
    time.sleep(max(0.0, 2 * LEASE - (time.monotonic() - stopped)))  # paused well past its lease

    resumed_at = old.log_size()
    old.proc.send_signal(signal.SIGCONT)
    resumed = time.monotonic()
    stepped_down = cluster.wait(lambda: old.leader() == 0, "the old leader to step down", 10)
    code, body = old.ready()
    assert code == 503 and body["checks"]["leader"]["ok"] is False, body
    assert new.leader() == 1 and new.ready()[0] == 200

    # the market moves again: the new leader rebalances; the old one, alive and caught up, sends nothing
    Market(w3, deployment).set_prices({**PRICES, "WETH": Decimal(3000)})
    cluster.wait(lambda: rebalances(c) > mid, "a rebalance by the new leader")
    final = settle(cluster, journal, c)
    time.sleep(1.0)

    after_resume = old.events(resumed_at)
    assert not [e for e in after_resume if e.get("event") in SENDING_EVENTS], after_resume[-20:]
    assert any(e.get("event") == "leadership changed" and e.get("leader") is False for e in after_resume)
    result = audit(cluster, journal, start_nonce, start_block)
    # every transaction mined after the old leader resumed was signed by the new one
    old_signed = signed_hashes(old.events())
    new_signed = signed_hashes(new.events())
    late = {i[5].lower() for i in result["intents"] if i[0] > intent_id and i[5]}
    assert late and late <= new_signed and not (late & old_signed)
    assert "Traceback" not in old.log_path.read_text() + new.log_path.read_text()
    observed = (f"takeover {failover:.2f}s after the stop (lease {LEASE}s); the old leader stepped down "
                f"{stepped_down:.2f}s after SIGCONT and sent nothing ({time.monotonic() - resumed:.1f}s observed); "
                f"every later transaction signed by the new leader; rebalanceCount {before}→{mid}→{final}")
    print("\nSIGSTOP: " + observed)
    record("ha.leader_paused_past_lease", "SIGSTOP of the leader with an intent in flight, SIGCONT after 2 lease "
           "periods", "once", "one sender: the paused leader steps down without sending; no duplicates", observed)


def test_two_started_at_once_exactly_one_leads_and_a_clean_stop_hands_over(  # noqa: PLR0917
    pg: tuple[str, str], cluster: Cluster, c: Any, w3: Any, deployment: Any, record: Any
) -> None:
    """A rebalance is due when both start: exactly one replica leads, signs and sends; the chain shows one effect
    per successful intent, every keeper transaction signed by that replica; a clean SIGTERM hands over at once."""
    dsn = schema_dsn(*pg)
    journal = Journal(*pg)
    start_nonce = w3.eth.get_transaction_count(deployment.keeper)
    start_block = w3.eth.block_number
    before = rebalances(c)
    rpc(cluster.anvil.url, "evm_increaseTime", [60])
    Market(w3, deployment).set_prices({**PRICES, "WETH": Decimal(3360)})  # +12%: a delta-drift rebalance is due
    a, b = cluster.start("a", dsn), cluster.start("b", dsn)
    cluster.wait(lambda: a.ready()[1].get("live") is True and b.ready()[1].get("live") is True, "both live", 30)
    leader, standby = cluster.one_leader([a, b])
    cluster.wait(lambda: rebalances(c) > before, "the due rebalance", 30)
    after = settle(cluster, journal, c)
    result = audit(cluster, journal, start_nonce, start_block)
    senders = [r.name for r in (a, b) if [e for e in r.events() if e.get("event") in SENDING_EVENTS]]
    mined = result["mined"]
    by_leader = mined <= signed_hashes(leader.events()) and not (mined & signed_hashes(standby.events()))
    assert senders == [leader.name], (senders, cluster.logs())
    assert by_leader and mined, (mined, cluster.logs())
    assert after - before == len(result["successes"]) >= 1  # one effect per successful intent: no duplicate
    for _ in range(10):  # stable: never two, never none
        assert (leader.leader() or 0) + (standby.leader() or 0) == 1
        time.sleep(0.2)
    codes = sorted([leader.ready()[0], standby.ready()[0]])
    assert codes == [200, 503]
    body = standby.ready()[1]
    assert body["checks"]["leader"]["ok"] is False and "standby" in body["checks"]["leader"]["detail"]
    assert any(e.get("event") == "standby: not the leader, not sending" for e in standby.events())

    leader.may_exit = True
    leader.proc.send_signal(signal.SIGTERM)  # a clean stop releases the lease: no need to wait for expiry
    assert leader.proc.wait(timeout=15) == 0
    handover = cluster.wait(lambda: standby.leader() == 1, "the standby to take over", 2 * LEASE)
    assert handover < LEASE
    assert standby.ready()[0] == 200
    observed = (f"rebalance due at start: one leader, one standby (readyz 200/503) over 10 checks; only the leader "
                f"logged send events; rebalanceCount {before}→{after} for {len(result['successes'])} successful "
                f"intent(s), {len(mined)} keeper transaction(s), all signed by the leader; clean SIGTERM handover in "
                f"{handover:.2f}s")
    print("\nstarted together: " + observed)
    record("ha.started_together", "two replicas started at the same moment on one PostgreSQL lease, a rebalance due",
           "once", "exactly one leads and sends; one effect on chain; only the leader is ready", observed)


def test_second_process_on_the_same_state_dir_refuses_to_send(  # noqa: PLR0917
    cluster: Cluster, c: Any, w3: Any, deployment: Any, tmp_path: Path, record: Any
) -> None:
    state = tmp_path / "shared-state"
    first, second = cluster.one_leader([cluster.start("a", None, state), cluster.start("b", None, state)])
    cluster.wait(lambda: "leader" in second.ready()[1].get("checks", {}), "the second to report its leadership", 30)
    assert second.ready()[0] == 503 and second.leader() == 0
    body = second.ready()[1]
    assert body["checks"]["leader"]["ok"] is False and "locked by" in body["checks"]["leader"]["detail"]
    standby = [e for e in second.events() if e.get("event") == "standby: not the leader, not sending"]
    assert standby and f"pid {first.proc.pid}" in standby[0]["reason"] and "not sending" in standby[0]["reason"]

    before = rebalances(c)
    market = Market(w3, deployment)
    rpc(cluster.anvil.url, "evm_increaseTime", [60])
    market.set_prices({**PRICES, "WETH": Decimal(3360)})
    cluster.wait(lambda: rebalances(c) > before, "the first to rebalance", 30)
    assert not [e for e in second.events() if e.get("event") in SENDING_EVENTS]
    assert second.leader() == 0 and first.leader() == 1
    record("ha.file_lock_second_process", "a second `keeper run` on the same state directory (embedded mode)",
           "once, with a rebalance due", "the second refuses to send and says why; one sender",
           f"second: readyz 503, reason names the holder (pid {first.proc.pid}); the first rebalanced; "
           "the second logged no send event")
