"""Faults on a real anvil: stuck transactions, fee spikes and caps, eviction, reorgs, expiry, gaps, refused
replacements, a private endpoint that is down or refuses — each on a SQLite and a PostgreSQL journal (a fresh
schema per test; skipped with a message when KEEPER_TEST_DATABASE_URL is unset)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from keeper.devnet.anvil import DEV_KEYS, rpc
from keeper.execute.chain import RpcChain, RpcError, RpcPool, TransportError, Web3Transport
from keeper.execute.gas import GWEI, GasPolicy, is_valid_bump, min_bump
from keeper.store import AttemptStatus, Intent, State
from tests.execute.conftest import (
    CHAIN_ID,
    SENDER,
    HarnessFactory,
    attempt_fees,
    automine,
    balance,
    fresh_address,
    mine,
    nonce,
    set_next_base_fee,
)

pytestmark = [pytest.mark.anvil, pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])]


def fees(attempt: Any) -> tuple[int, int]:
    return attempt.max_fee, attempt.priority_fee


def test_stuck_transaction_is_replaced_at_the_same_nonce_with_a_valid_bump(harness: HarnessFactory) -> None:
    h = harness(stuck_blocks=2)
    automine(h.node, False)
    to = fresh_address()
    record = h.pipeline.submit(Intent("stuck", to=to, value=5))
    h.pipeline.tick()
    assert h.store.get(record.id).state is State.BROADCAST
    set_next_base_fee(h.node, 200 * GWEI)  # fee spike: the pending tx no longer fits
    mine(h.node, 2)
    assert balance(h.node, to) == 0
    h.pipeline.tick()  # stuck for 2 blocks → re-simulate → replacement
    attempts = h.store.attempts(record.id)
    assert [a.kind for a in attempts] == ["original", "replacement"]
    assert {a.nonce for a in attempts} == {0}
    bump = min_bump(attempt_fees(attempts[0]))
    assert attempts[1].max_fee >= bump.max_fee and attempts[1].priority_fee >= bump.priority_fee
    h.settle()
    final = h.store.get(record.id)
    assert final.state is State.FINALIZED and final.mined_tx_hash == attempts[1].tx_hash
    assert balance(h.node, to) == 5 and nonce(h.node) == 1
    assert h.metrics.replacements == 1
    assert [a.status for a in h.store.attempts(record.id)] == [AttemptStatus.REPLACED, AttemptStatus.MINED]


def test_cap_below_market_waits_never_sends_above_and_resumes(harness: HarnessFactory) -> None:
    cap = 20 * GWEI
    h = harness(gas=GasPolicy(max_fee_cap=cap))
    automine(h.node, False)
    set_next_base_fee(h.node, 100 * GWEI)
    mine(h.node)
    to = fresh_address()
    record = h.pipeline.submit(Intent("capped", to=to, value=9))
    for _ in range(3):
        h.pipeline.tick()
        mine(h.node)
    assert h.store.attempts(record.id) == []  # nothing sent, nothing signed
    assert h.store.get(record.id).nonce is None  # no nonce held while waiting
    assert nonce(h.node, tag="pending") == 0
    assert h.metrics.fee_cap_waits >= 3
    assert [kind for kind, _ in h.alerts] == ["fee_cap"]  # alerted once per episode
    set_next_base_fee(h.node, 1 * GWEI)  # fees fall
    mine(h.node)
    h.settle()
    assert h.store.get(record.id).state is State.FINALIZED
    assert balance(h.node, to) == 9
    assert all((a.max_fee or 0) <= cap for a in h.store.attempts(record.id))


def test_cap_forbidding_a_bump_waits_instead_of_underpricing(harness: HarnessFactory) -> None:
    policy = GasPolicy(max_fee_cap=3 * GWEI, priority_floor=GWEI, priority_ceiling=GWEI)
    h = harness(gas=policy, stuck_blocks=1)
    automine(h.node, False)
    set_next_base_fee(h.node, GWEI)
    mine(h.node)
    to = fresh_address()
    record = h.pipeline.submit(Intent("capped-bump", to=to, value=3))
    h.pipeline.tick()
    first = h.store.attempts(record.id)
    assert len(first) == 1 and (first[0].max_fee or 0) <= policy.max_fee_cap
    set_next_base_fee(h.node, 50 * GWEI)  # spike: the tx is stuck, a +12.5% bump would exceed the cap
    for _ in range(3):
        mine(h.node)
        h.pipeline.tick()
    attempts = h.store.attempts(record.id)
    assert len(attempts) == 1  # no underpriced or over-cap replacement was sent
    assert h.metrics.fee_cap_waits >= 1 and ("fee_cap" in [k for k, _ in h.alerts])
    set_next_base_fee(h.node, GWEI // 2)  # fees fall: the original becomes includable again
    mine(h.node)
    h.settle()
    assert h.store.get(record.id).state is State.FINALIZED
    assert balance(h.node, to) == 3
    assert all((a.max_fee or 0) <= policy.max_fee_cap for a in h.store.attempts(record.id))


def test_evicted_transaction_is_rebroadcast_identically(harness: HarnessFactory) -> None:
    h = harness()
    automine(h.node, False)
    to = fresh_address()
    record = h.pipeline.submit(Intent("evicted", to=to, value=4))
    h.pipeline.tick()
    (attempt,) = h.store.attempts(record.id)
    rpc(h.node.url, "anvil_dropAllTransactions")
    assert rpc(h.node.url, "eth_getTransactionByHash", [attempt.tx_hash]) is None
    h.pipeline.tick()
    assert rpc(h.node.url, "eth_getTransactionByHash", [attempt.tx_hash]) is not None  # same bytes, same hash
    assert len(h.store.attempts(record.id)) == 1 and h.metrics.rebroadcasts == 1
    rpc(h.node.url, "anvil_dropTransaction", [attempt.tx_hash])
    h.settle()
    assert balance(h.node, to) == 4 and nonce(h.node) == 1
    assert h.store.get(record.id).mined_tx_hash == attempt.tx_hash


def test_reorged_receipt_goes_back_to_broadcast_and_is_resent(harness: HarnessFactory) -> None:
    h = harness(confirmations=3)
    to = fresh_address()
    record = h.pipeline.submit(Intent("reorg", to=to, value=6))
    h.pipeline.tick()  # automine: mined at once
    mined = h.store.get(record.id)
    assert mined.state is State.MINED
    head = int(str(rpc(h.node.url, "eth_blockNumber")), 16)
    rpc(h.node.url, "anvil_reorg", [head - mined.mined_block + 1, []])  # drop the block with our tx
    assert rpc(h.node.url, "eth_getTransactionReceipt", [mined.mined_tx_hash]) is None
    assert balance(h.node, to) == 0
    automine(h.node, False)
    h.pipeline.tick()
    back = h.store.get(record.id)
    assert back.state is State.BROADCAST and h.metrics.reorgs == 1 and h.metrics.rebroadcasts == 1
    assert "reorged" in h.persisted
    h.settle()
    final = h.store.get(record.id)
    assert final.state is State.FINALIZED and final.mined_tx_hash == mined.mined_tx_hash
    assert balance(h.node, to) == 6 and nonce(h.node) == 1


def test_expired_intent_is_cancelled_by_a_self_transfer_at_its_nonce(harness: HarnessFactory) -> None:
    h = harness(stuck_blocks=50)
    automine(h.node, False)
    head = int(str(rpc(h.node.url, "eth_blockNumber")), 16)
    to = fresh_address()
    record = h.pipeline.submit(Intent("expiring", to=to, value=8, deadline_block=head + 2))
    h.pipeline.tick()
    set_next_base_fee(h.node, 100 * GWEI)  # keep it from being mined
    mine(h.node, 3)
    h.pipeline.tick()
    attempts = h.store.attempts(record.id)
    assert [a.kind for a in attempts] == ["original", "cancel"]
    h.settle()
    final = h.store.get(record.id)
    assert final.state is State.CANCELLED and final.outcome == "cancelled" and final.cancel_reason == "expired"
    assert balance(h.node, to) == 0 and nonce(h.node) == 1
    assert h.metrics.cancels == 1


def test_planner_no_longer_wanting_a_stuck_intent_cancels_instead_of_bumping(harness: HarnessFactory) -> None:
    wanted = {"yes": True}
    h = harness(stuck_blocks=1)
    h.pipeline.still_wanted = lambda _record: wanted["yes"]
    automine(h.node, False)
    to = fresh_address()
    record = h.pipeline.submit(Intent("unwanted", to=to, value=2))
    h.pipeline.tick()
    wanted["yes"] = False
    set_next_base_fee(h.node, 100 * GWEI)
    mine(h.node, 2)
    h.pipeline.tick()
    assert [a.kind for a in h.store.attempts(record.id)] == ["original", "cancel"]
    h.settle()
    assert h.store.get(record.id).state is State.CANCELLED and balance(h.node, to) == 0


def test_unwanted_before_sending_is_cancelled_without_a_transaction(harness: HarnessFactory) -> None:
    h = harness()
    h.pipeline.still_wanted = lambda _record: False
    record = h.pipeline.submit(Intent("never", to=fresh_address(), value=2))
    h.pipeline.tick()
    assert h.store.get(record.id).state is State.CANCELLED and h.store.attempts(record.id) == []
    assert nonce(h.node, tag="pending") == 0


def test_reconcile_fills_a_nonce_gap(harness: HarnessFactory) -> None:
    h = harness()
    automine(h.node, False)
    # another run left an intent holding nonce 1 (signed, sent) while nonce 0 was released
    first = h.pipeline.submit(Intent("holds-0", to=fresh_address(), value=1))
    second = h.pipeline.submit(Intent("holds-1", to=fresh_address(), value=1))
    h.pipeline.tick()
    assert sorted(h.store.get(i).nonce for i in (first.id, second.id)) == [0, 1]  # type: ignore[type-var]
    zero = first if h.store.get(first.id).nonce == 0 else second
    (attempt,) = h.store.attempts(zero.id)
    rpc(h.node.url, "anvil_dropTransaction", [attempt.tx_hash])
    h.store.mark_attempt(attempt.id, AttemptStatus.REJECTED)
    h.store.transition(zero.id, State.BROADCAST, State.FAILED, nonce=None)
    plan = h.pipeline.reconcile()
    assert plan.gaps == (0,)
    h.settle()
    assert nonce(h.node) == 2
    gap = [r for r in h.store.all_intents(SENDER) if r.intent.kind == "gap_fill"]
    assert len(gap) == 1 and gap[0].nonce == 0 and gap[0].state is State.FINALIZED


class _BlackHole:
    """A private relay that accepts everything and forwards nothing."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def request(self, method: str, params: list[Any]) -> Any:
        assert method == "eth_sendRawTransaction"
        self.sent.append(params[0])
        from eth_utils.crypto import keccak

        return "0x" + keccak(bytes.fromhex(params[0][2:])).hex()


def test_private_route_falls_back_to_public_after_n_blocks(harness: HarnessFactory, anvil: Any) -> None:
    hole = _BlackHole()
    chain = RpcChain(RpcPool([Web3Transport(anvil.url)], CHAIN_ID), RpcPool([hole], CHAIN_ID, names=["private"]))
    h = harness(chain=chain, private_fallback_blocks=3, stuck_blocks=50)
    to = fresh_address()
    record = h.pipeline.submit(Intent("private", to=to, value=1))
    h.pipeline.tick()
    assert len(hole.sent) == 1 and balance(h.node, to) == 0
    for _ in range(2):
        mine(h.node)
        h.pipeline.tick()
    assert balance(h.node, to) == 0  # still private only
    h.settle()
    assert balance(h.node, to) == 1
    (attempt,) = h.store.attempts(record.id)
    assert attempt.route == "public"


def test_a_refused_replacement_is_outbid_on_the_next_tick_not_signed_again(harness: HarnessFactory) -> None:
    """Another transaction at our nonce (the key used elsewhere) priced above our replacements: the node refuses
    them as underpriced; each tick out-bids every earlier attempt (refused ones included) until one is taken."""
    from eth_account import Account

    h = harness(stuck_blocks=1)
    automine(h.node, False)
    to = fresh_address()
    record = h.pipeline.submit(Intent("outbid", to=to, value=5))
    h.pipeline.tick()
    set_next_base_fee(h.node, 100 * GWEI)  # the original (about 2 gwei) is stuck
    mine(h.node)
    elsewhere = fresh_address()
    foreign = Account.from_key(DEV_KEYS[0]).sign_transaction(
        {"type": 2, "chainId": CHAIN_ID, "nonce": 0, "to": elsewhere, "value": 1, "gas": 21000, "data": b"",
         "maxFeePerGas": 250 * GWEI, "maxPriorityFeePerGas": 1}
    )
    rpc(h.node.url, "eth_sendRawTransaction", ["0x" + bytes(foreign.raw_transaction).hex()])
    for _ in range(12):  # no block in between: the market is the same, only the bump makes new bytes
        h.pipeline.tick()
        if h.store.attempts(record.id)[-1].status is AttemptStatus.BROADCAST:
            break
    attempts = h.store.attempts(record.id)
    refused = [a for a in attempts if a.status is AttemptStatus.REJECTED]
    assert len(refused) >= 2 and attempts[-1].status is AttemptStatus.BROADCAST
    assert len({a.tx_hash for a in attempts}) == len(attempts)
    for older, newer in itertools.pairwise(attempts):
        assert is_valid_bump(attempt_fees(older), attempt_fees(newer))
    assert h.metrics.tick_errors == 0
    h.settle()
    final = h.store.get(record.id)
    assert final.state is State.FINALIZED and final.mined_tx_hash == attempts[-1].tx_hash
    assert balance(h.node, to) == 5 and balance(h.node, elsewhere) == 0 and nonce(h.node) == 1


class _Down:
    """A private endpoint that is down: every request times out."""

    def __init__(self) -> None:
        self.calls = 0

    def request(self, method: str, params: list[Any]) -> Any:
        self.calls += 1
        raise TransportError(f"{method}: ReadTimeout")


class _Refusing:
    """A private relay that refuses every transaction (its own simulation says it reverts)."""

    def __init__(self) -> None:
        self.calls = 0

    def request(self, method: str, params: list[Any]) -> Any:
        self.calls += 1
        raise RpcError(-32000, "execution reverted: relay simulation failed")


def _private(anvil: Any, relay: Any) -> RpcChain:
    public = RpcPool([Web3Transport(anvil.url)], CHAIN_ID)
    return RpcChain(public, RpcPool([relay], CHAIN_ID, names=["private"], retries=0, sleep=lambda _s: None))


def test_private_endpoint_down_falls_back_to_public_after_k_failures(harness: HarnessFactory, anvil: Any) -> None:
    down = _Down()
    h = harness(chain=_private(anvil, down), private_fallback_blocks=50, private_max_failures=3, stuck_blocks=50)
    to = fresh_address()
    record = h.pipeline.submit(Intent("private-down", to=to, value=1))
    seen = []  # (private tries so far, effect on chain) after each tick
    for _ in range(5):
        h.pipeline.tick()
        seen.append((down.calls, balance(h.node, to)))
        if seen[-1][1]:
            break
    assert seen[-1] == (3, 1), seen  # the third consecutive failure sent it publicly, in the same send
    assert all(effect == 0 for tries, effect in seen if tries < 3), seen  # not public before that
    h.settle()
    (attempt,) = h.store.attempts(record.id)
    assert attempt.route == "public" and h.store.get(record.id).state is State.FINALIZED
    assert h.metrics.count("private_fallbacks", reason="failures") == 1 and down.calls == 3


def test_private_endpoint_down_falls_back_after_n_blocks_from_the_first_try(
    harness: HarnessFactory, anvil: Any
) -> None:
    """The window counts from the first send try: a private endpoint that never accepted anything does not
    keep the intent private forever."""
    down = _Down()
    h = harness(chain=_private(anvil, down), private_fallback_blocks=3, private_max_failures=100, stuck_blocks=50)
    to = fresh_address()
    record = h.pipeline.submit(Intent("private-window", to=to, value=1))
    h.pipeline.tick()
    signed_at = h.store.attempts(record.id)[0].signed_block
    assert signed_at is not None
    seen = []  # (blocks since the first try, effect on chain) after each tick
    for _ in range(6):
        mine(h.node)
        head = int(str(rpc(h.node.url, "eth_blockNumber")), 16)  # the tick's head (automine adds one after)
        h.pipeline.tick()
        seen.append((head - signed_at, balance(h.node, to)))
        if seen[-1][1]:
            break
    assert seen[-1] == (3, 1), seen  # public once the window (3 blocks from the first try) is over...
    assert all(effect == 0 for blocks, effect in seen if blocks < 3), seen  # ...and not before
    tries = down.calls
    h.settle()
    assert down.calls == tries  # nothing more was sent privately
    assert h.store.attempts(record.id)[0].route == "public"
    assert h.metrics.count("private_fallbacks", reason="window") == 1


def test_private_relay_refusal_falls_back_to_public_instead_of_failing(harness: HarnessFactory, anvil: Any) -> None:
    relay = _Refusing()
    h = harness(chain=_private(anvil, relay), private_fallback_blocks=50, stuck_blocks=50)
    to = fresh_address()
    record = h.pipeline.submit(Intent("private-refused", to=to, value=1))
    h.pipeline.tick()
    assert relay.calls == 1 and balance(h.node, to) == 1  # public at once, same tick
    h.settle()
    final = h.store.get(record.id)
    assert final.state is State.FINALIZED and h.store.attempts(record.id)[0].route == "public"
    assert relay.calls == 1
