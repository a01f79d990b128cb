"""Pipeline policy on the in-memory FakeChain + MemoryStore: node answers, legacy fees, fencing, lost nonces,
refused replacements, per-intent isolation in a tick, replaced attempts."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from keeper.devnet.anvil import DEV_ACCOUNTS
from keeper.execute.fakes import FakeChain
from keeper.execute.gas import GWEI, GasPolicy, is_valid_bump
from keeper.execute.metrics import ExecutionMetrics
from keeper.execute.pipeline import CHECKPOINTS, Pipeline, PipelineConfig
from keeper.store import AttemptStatus, FencingError, Intent, IntentRecord, MemoryStore, SqliteStore, State, Store
from tests.execute.conftest import attempt_fees, dev_signer, fresh_address

SENDER = DEV_ACCOUNTS[0]


def build(
    chain: FakeChain | None = None, *, store: Any = None, labels: list[str] | None = None, **config: object
) -> tuple[Pipeline, FakeChain, Any, list[str]]:
    fake = chain or FakeChain()
    store = store if store is not None else MemoryStore()
    alerts: list[str] = []
    settings: dict[str, object] = {"confirmations": 1, "stuck_blocks": 2, "gas": GasPolicy(max_fee_cap=100 * GWEI)}
    settings.update(config)
    pipeline = Pipeline(
        store,
        fake,
        dev_signer(),
        PipelineConfig(chain_id=31337, **settings),  # type: ignore[arg-type]
        metrics=ExecutionMetrics(),
        alert=lambda kind, _msg: alerts.append(kind),
        on_persist=None if labels is None else lambda label, _record: labels.append(label),
    )
    return pipeline, fake, store, alerts


def settle(pipeline: Pipeline, fake: FakeChain) -> None:
    assert pipeline.run_until_settled(fake.mine, 30) == []


def test_insufficient_funds_gives_up_releases_the_nonce_and_alerts() -> None:
    pipeline, fake, store, alerts = build()
    fake.send_errors.append("insufficient funds for gas * price + value")
    record = pipeline.submit(Intent("poor", to=fresh_address(), value=1))
    pipeline.tick()
    failed = store.get(record.id)
    assert failed.state is State.FAILED and failed.nonce is None and "insufficient_funds" in (failed.error or "")
    assert [a.status for a in store.attempts(record.id)] == [AttemptStatus.REJECTED]
    assert alerts == ["insufficient_funds"] and pipeline.metrics.give_ups == 1
    # the nonce is free again: the next intent takes 0
    nxt = pipeline.submit(Intent("next", to=fresh_address(), value=1))
    settle(pipeline, fake)
    assert store.get(nxt.id).nonce == 0 and fake.nonces[SENDER.lower()] == 1


def test_transient_send_failure_retries_the_same_bytes() -> None:
    pipeline, fake, store, _ = build()
    fake.send_errors += ["upstream request timeout", "502 bad gateway"]
    to = fresh_address()
    record = pipeline.submit(Intent("flaky", to=to, value=3))
    pipeline.tick()
    assert store.get(record.id).state is State.SIGNED  # stored, not known to be broadcast
    settle(pipeline, fake)
    (attempt,) = store.attempts(record.id)
    assert fake.sends[0][0] == attempt.tx_hash and fake.balance_of(to) == 3
    assert pipeline.metrics.send_errors == 2


def test_already_known_counts_as_broadcast() -> None:
    pipeline, fake, store, _ = build()
    fake.send_errors.append("already known")
    record = pipeline.submit(Intent("known", to=fresh_address(), value=1))
    pipeline.tick()
    assert store.get(record.id).state is State.BROADCAST


def test_nonce_too_low_after_inclusion_marks_mined(monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline, fake, store, _ = build()
    fake.send_errors += ["timeout", "timeout"]  # the journal never learns that the node took it...
    to = fresh_address()
    record = pipeline.submit(Intent("included", to=to, value=2))
    pipeline.tick()
    (attempt,) = store.attempts(record.id)
    assert store.get(record.id).state is State.SIGNED
    fake.send_raw(attempt.raw)  # ...but it did, and it was mined
    fake.mine()
    monkeypatch.setattr(fake, "nonce", lambda _address, _tag: 0)  # a lagging read endpoint
    pipeline.tick()  # re-send → "nonce too low" → our receipt → mined
    assert store.get(record.id).state in (State.MINED, State.CONFIRMED)
    assert store.get(record.id).mined_tx_hash == attempt.tx_hash
    monkeypatch.undo()
    settle(pipeline, fake)
    assert fake.balance_of(to) == 2 and len(fake.mined) == 1


def test_underpriced_first_send_is_repriced_at_the_same_nonce() -> None:
    pipeline, fake, store, _ = build()
    fake.send_errors.append("replacement transaction underpriced")
    to = fresh_address()
    record = pipeline.submit(Intent("underpriced", to=to, value=1))
    pipeline.tick()
    back = store.get(record.id)
    assert back.state is State.SIMULATED and back.nonce == 0  # nonce kept, attempt rejected
    pipeline.tick()
    attempts = store.attempts(record.id)
    assert attempts[0].status is AttemptStatus.REJECTED and len(attempts) == 2
    assert attempts[1].max_fee * 1000 >= attempts[0].max_fee * 1125  # type: ignore[operator]
    settle(pipeline, fake)
    assert fake.balance_of(to) == 1


def test_nonce_used_by_a_foreign_transaction_is_resent_at_a_new_nonce() -> None:
    pipeline, fake, store, alerts = build(nonce_lost_grace_blocks=1)
    to = fresh_address()
    record = pipeline.submit(Intent("stolen", to=to, value=5))
    pipeline.tick()
    fake.foreign_tx(SENDER)  # the key was used elsewhere; our tx at nonce 0 can never be mined
    fake.mine()
    pipeline.tick()
    assert store.get(record.id).nonce_lost_block is not None
    fake.mine()
    settle(pipeline, fake)
    final = store.get(record.id)
    assert final.state is State.FINALIZED and final.nonce == 1 and fake.balance_of(to) == 5
    assert "nonce_lost" in alerts


def test_legacy_chain_uses_gas_price_and_bumps_it() -> None:
    fake = FakeChain(base_fee=None)
    pipeline, fake, store, _ = build(fake, stuck_blocks=1)
    to = fresh_address()
    record = pipeline.submit(Intent("legacy", to=to, value=1))
    pipeline.tick()
    (first,) = store.attempts(record.id)
    assert first.gas_price == 2 * GWEI and first.max_fee is None
    fake.mempool.clear()  # dropped everywhere: not mined; the node no longer knows it → identical re-send
    pipeline.tick()
    assert len(store.attempts(record.id)) == 1 and pipeline.metrics.rebroadcasts == 1
    fake.gas_price_wei = 3 * GWEI
    fake.head += 1
    pipeline.tick()  # stuck for 1 block → replacement with a bumped legacy price
    second = store.attempts(record.id)[-1]
    assert second.kind == "replacement" and second.gas_price == 3 * GWEI
    settle(pipeline, fake)
    assert fake.balance_of(to) == 1


def test_fencing_epoch_mismatch_stops_before_signing() -> None:
    pipeline, fake, store, _ = build(epoch=1)
    store.set_epoch(SENDER, 2)  # another keeper took over
    record = pipeline.submit(Intent("fenced", to=fresh_address(), value=1))
    with pytest.raises(FencingError):
        pipeline.tick()
    assert store.attempts(record.id) == [] and store.get(record.id).nonce is None and fake.sends == []


def test_revert_on_a_stuck_intent_cancels_it() -> None:
    pipeline, fake, store, _ = build()
    to = fresh_address()
    record = pipeline.submit(Intent("goes-bad", to=to, value=1))
    pipeline.tick()
    fake.mempool.clear()
    fake.base_fee = 50 * GWEI  # original not includable; resend refused
    fake.reverts[to.lower()] = bytes.fromhex("4e487b71") + (0x11).to_bytes(32, "big")
    fake.head += 2
    pipeline.tick()
    attempts = store.attempts(record.id)
    assert attempts[-1].kind == "cancel" and pipeline.metrics.simulation_reverts == 1
    assert store.get(record.id).cancel_reason == "would_revert:Panic"
    settle(pipeline, fake)
    assert store.get(record.id).state is State.CANCELLED and fake.balance_of(to) == 0


def test_read_errors_do_not_lose_the_intent() -> None:
    pipeline, fake, store, _ = build()
    record = pipeline.submit(Intent("reads", to=fresh_address(), value=1))
    fake.read_failures = 1
    with pytest.raises(Exception, match="endpoint down"):
        pipeline.tick()  # the head read itself failed: nothing advanced
    assert store.get(record.id).state is State.PLANNED
    settle(pipeline, fake)
    assert store.get(record.id).state is State.FINALIZED


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_refused_replacement_is_outbid_next_tick_never_signed_again(kind: str, tmp_path: Path) -> None:
    """Audit repro (/tmp/audit/t_repl.py): a replacement refused as underpriced used to be re-signed from the last
    live attempt, giving the same bytes, a UNIQUE(tx_hash) error out of tick() on every tick: nothing advanced."""
    store: Store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "journal.sqlite3")
    labels: list[str] = []
    pipeline, fake, store, _ = build(store=store, labels=labels, stuck_blocks=1)
    to = fresh_address()
    record = pipeline.submit(Intent("refused-replacement", to=to, value=1))
    pipeline.tick()
    fake.base_fee = 5 * GWEI  # the original (about 2.1 gwei) no longer fits: stuck
    fake.head += 2
    for _ in range(3):  # same head, same market: only the bump over the refused attempt makes new bytes
        fake.send_errors.append("replacement transaction underpriced")
        pipeline.tick()
    attempts = store.attempts(record.id)
    assert [a.kind for a in attempts] == ["original"] + ["replacement"] * 3
    assert [a.status for a in attempts[1:]] == [AttemptStatus.REJECTED] * 3
    assert len({a.tx_hash for a in attempts}) == 4
    for older, newer in itertools.pairwise(attempts):  # each out-bids the one before on both fields
        assert is_valid_bump(attempt_fees(older), attempt_fees(newer))
    assert pipeline.metrics.tick_errors == 0
    pipeline.tick()  # accepted now: it supersedes the original
    attempts = store.attempts(record.id)
    assert attempts[0].status is AttemptStatus.REPLACED and attempts[-1].status is AttemptStatus.BROADCAST
    settle(pipeline, fake)
    final = store.get(record.id)
    assert final.state is State.FINALIZED and final.mined_tx_hash == attempts[-1].tx_hash
    assert fake.balance_of(to) == 1 and len(fake.mined) == 1
    assert labels.count("replacement_signed") == 4 and set(labels) <= set(CHECKPOINTS)


class _WedgedStore(MemoryStore):
    """Every write to one intent fails like a journal constraint would (until `wedged` is cleared)."""

    def __init__(self) -> None:
        super().__init__()
        self.wedged: str | None = None

    def transition(self, intent_id: int, expected: State, new: State, **fields: Any) -> IntentRecord:
        if self.get(intent_id).intent.idempotency_key == self.wedged:
            raise sqlite3.IntegrityError("UNIQUE constraint failed: attempts.tx_hash")
        return super().transition(intent_id, expected, new, **fields)


def test_one_failing_intent_does_not_hold_up_the_others() -> None:
    store = _WedgedStore()
    pipeline, fake, store, _ = build(store=store)
    store.wedged = "bad"
    bad = pipeline.submit(Intent("bad", to=fresh_address(), value=1))
    good_to = fresh_address()
    good = pipeline.submit(Intent("good", to=good_to, value=2))
    with capture_logs() as logs:
        for _ in range(8):
            pipeline.tick()  # never raises
            fake.mine()
    assert store.get(good.id).state is State.FINALIZED and fake.balance_of(good_to) == 2
    assert store.get(bad.id).state is State.PLANNED
    assert pipeline.metrics.count("tick_errors", reason="bug") == 8  # counted every tick...
    failures = [e for e in logs if e["event"] == "intent.step_failed"]
    assert len(failures) == 1 and failures[0]["intent_id"] == bad.id  # ...logged once
    assert "IntegrityError" in failures[0]["error"] and "exc_info" not in failures[0]
    store.wedged = None  # the cause is gone: it advances, and says so once
    with capture_logs() as logs:
        settle(pipeline, fake)
    assert store.get(bad.id).state is State.FINALIZED
    assert [e["event"] for e in logs].count("intent.step_recovered") == 1


def test_an_attempt_superseded_by_a_replacement_is_recorded_as_replaced() -> None:
    pipeline, fake, store, _ = build(stuck_blocks=1)
    record = pipeline.submit(Intent("superseded", to=fresh_address(), value=1))
    pipeline.tick()
    fake.base_fee = 5 * GWEI
    fake.head += 1
    pipeline.tick()  # stuck → replacement accepted by the node
    original, replacement = store.attempts(record.id)
    assert (original.status, replacement.status) == (AttemptStatus.REPLACED, AttemptStatus.BROADCAST)
    settle(pipeline, fake)
    assert [a.status for a in store.attempts(record.id)] == [AttemptStatus.REPLACED, AttemptStatus.MINED]
    assert store.get(record.id).state is State.FINALIZED
    # "replaced" is an attempt status only: a superseded *intent* is cancelled, there is no such intent state
    assert "replaced" not in {state.value for state in State}


def test_cancel_and_reorg_checkpoints_are_announced() -> None:
    labels: list[str] = []
    pipeline, fake, store, _ = build(labels=labels, confirmations=3)
    record = pipeline.submit(Intent("expiring", to=fresh_address(), value=1, deadline_block=1))
    pipeline.tick()
    fake.base_fee = 5 * GWEI
    fake.head += 2  # past the deadline: cancelled by a self-transfer at its nonce
    pipeline.tick()
    assert [a.kind for a in store.attempts(record.id)] == ["original", "cancel"]
    fake.mine()
    pipeline.tick()
    mined = store.get(record.id)
    assert mined.state is State.MINED
    fake.receipts.pop(mined.mined_tx_hash)  # a reorg took the block away
    pipeline.tick()
    assert {"cancel_signed", "reorged"} <= set(labels) and set(labels) <= set(CHECKPOINTS)


def test_a_mined_revert_is_replayed_decoded_journalled_and_counted() -> None:
    """Simulated fine, then the state changed before mining: the receipt has status 0. The pipeline replays the
    call at the mined block's parent, decodes the custom error from abis/ and puts it in the journal entry, the
    log line and the `mined_reverts` counter labelled by the error's name only."""
    from eth_abi.abi import encode
    from eth_utils.crypto import keccak

    pipeline, fake, store, _ = build()
    to = fresh_address()
    token = fresh_address()
    selector = keccak(text="FillOutsideBound(address,uint256,uint256)")[:4]
    data = selector + encode(["address", "uint256", "uint256"], [token, 990, 1000])
    record = pipeline.submit(Intent("fills-short", to=to, value=1))
    pipeline.tick()  # simulated and sent while the call still passes
    assert store.get(record.id).state is State.BROADCAST
    fake.revert_on_mine.add(to.lower())
    fake.reverts[to.lower()] = data  # the state the transaction meets
    with capture_logs() as logs:
        settle(pipeline, fake)
    done = store.get(record.id)
    assert done.outcome == "reverted"
    assert done.error == f"reverted on chain: FillOutsideBound(token={token.lower()}, executed=990, minimum=1000)"
    assert pipeline.metrics.count("mined_reverts", error="FillOutsideBound") == 1
    assert pipeline.metrics.simulation_reverts == 0  # not a refusal before sending
    line = [x for x in logs if x["event"] == "intent.mined_revert"]
    assert len(line) == 1 and line[0]["error_name"] == "FillOutsideBound" and line[0]["intent_id"] == record.id


def test_a_mined_revert_that_does_not_replay_is_counted_as_not_reproduced() -> None:
    pipeline, fake, store, _ = build()
    to = fresh_address()
    record = pipeline.submit(Intent("out-of-gas", to=to, value=1))
    pipeline.tick()
    fake.revert_on_mine.add(to.lower())
    settle(pipeline, fake)
    assert store.get(record.id).error == "reverted on chain: NotReproduced()"
    assert pipeline.metrics.count("mined_reverts", error="NotReproduced") == 1


def test_the_first_send_re_simulates_on_a_block_mined_after_the_tick_read_its_head() -> None:
    """Demo root cause: a price update mined while the tick was planning (after its head read, during the
    still-wanted check). Simulated at the tick's stale head it passed and mined reverted; re-simulated on the
    newest block right before signing, it is refused before any gas is spent."""
    pipeline, fake, store, _ = build()
    to = fresh_address()
    calls = {"n": 0}

    def wanted(_record: IntentRecord) -> bool:
        calls["n"] += 1
        if calls["n"] == 2:  # the send step's check: meanwhile the market's price update is mined
            fake.head += 1
            fake.reverts[to.lower()] = bytes.fromhex("4e487b71") + (0x11).to_bytes(32, "big")
        return True

    pipeline.still_wanted = wanted
    record = pipeline.submit(Intent("raced", to=to, value=1))
    pipeline.tick()
    done = store.get(record.id)
    assert done.state is State.FAILED and done.nonce is None and store.attempts(record.id) == []
    assert pipeline.metrics.simulation_reverts == 1 and fake.sends == []


def test_a_mined_revert_that_used_its_whole_gas_limit_is_counted_as_out_of_gas() -> None:
    """The replay runs without the gas limit and passes; the receipt used the whole limit: `OutOfGas`."""
    pipeline, fake, store, _ = build()
    to = fresh_address()
    record = pipeline.submit(Intent("heavier-at-mining", to=to, value=1))
    pipeline.tick()
    fake.out_of_gas.add(to.lower())
    settle(pipeline, fake)
    (attempt,) = store.attempts(record.id)
    limit = attempt.gas_limit
    assert store.get(record.id).error == f"reverted on chain: OutOfGas(used={limit}, limit={limit})"
    assert pipeline.metrics.count("mined_reverts", error="OutOfGas") == 1
