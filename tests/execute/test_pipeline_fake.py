"""Pipeline policy on the in-memory FakeChain + MemoryStore: node answers, legacy fees, fencing, lost nonces."""

from __future__ import annotations

import pytest

from keeper.devnet.anvil import DEV_ACCOUNTS
from keeper.execute.fakes import FakeChain
from keeper.execute.gas import GWEI, GasPolicy
from keeper.execute.metrics import ExecutionMetrics
from keeper.execute.pipeline import Pipeline, PipelineConfig
from keeper.store import AttemptStatus, FencingError, Intent, MemoryStore, State
from tests.execute.conftest import dev_signer, fresh_address

SENDER = DEV_ACCOUNTS[0]


def build(chain: FakeChain | None = None, **config: object) -> tuple[Pipeline, FakeChain, MemoryStore, list[str]]:
    fake = chain or FakeChain()
    store = MemoryStore()
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
