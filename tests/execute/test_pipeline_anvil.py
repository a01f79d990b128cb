"""The pipeline against a real anvil: happy path, idempotency, events, the simulation gate."""

from __future__ import annotations

import pytest

from keeper.execute.chain import CallRequest
from keeper.store import AttemptStatus, ExpectedEvent, Intent, State
from tests.execute.conftest import SENDER, HarnessFactory, balance, fresh_address, mine, nonce

pytestmark = pytest.mark.anvil


@pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])
def test_value_transfer_goes_through_every_state_once(harness: HarnessFactory, store_kind: str) -> None:
    h = harness(store_kind=store_kind)
    to = fresh_address()
    record = h.pipeline.submit(Intent(idempotency_key="pay-1", to=to, value=12345))
    assert h.pipeline.submit(Intent(idempotency_key="pay-1", to=to, value=12345)).id == record.id
    h.settle()
    final = h.store.get(record.id)
    assert final.state is State.FINALIZED and final.outcome == "success"
    assert balance(h.node, to) == 12345
    assert nonce(h.node) == 1
    attempts = h.store.attempts(record.id)
    assert len(attempts) == 1 and attempts[0].status is AttemptStatus.MINED
    assert attempts[0].tx_hash == final.mined_tx_hash
    assert h.persisted[:7] == ["planned", "simulated", "nonce_reserved", "signed", "sent", "broadcast", "mined"]
    assert h.persisted[-2:] == ["confirmed", "finalized"]
    # the same key after completion still returns the existing intent, never a second send
    again = h.pipeline.submit(Intent(idempotency_key="pay-1", to=to, value=12345))
    assert again.id == record.id and again.state is State.FINALIZED
    assert h.pipeline.tick() == []
    assert balance(h.node, to) == 12345


def test_several_intents_get_consecutive_nonces(harness: HarnessFactory) -> None:
    h = harness()
    targets = [fresh_address() for _ in range(3)]
    ids = [h.pipeline.submit(Intent(idempotency_key=f"multi-{i}", to=t, value=i + 1)).id for i, t in enumerate(targets)]
    h.settle()
    assert sorted(h.store.get(i).nonce or 0 for i in ids) == [0, 1, 2]
    assert [balance(h.node, t) for t in targets] == [1, 2, 3]
    assert nonce(h.node) == 3


def test_token_transfer_success_requires_the_expected_event(harness: HarnessFactory, token: str) -> None:
    h = harness()
    to = fresh_address()
    data = transfer_data(to, 7)
    ok = h.pipeline.submit(Intent("tok-ok", to=token, data=data, expected_event=ExpectedEvent(TRANSFER_TOPIC, token)))
    wrong = h.pipeline.submit(
        Intent(
            "tok-no-event", to=token, data=transfer_data(to, 1), expected_event=ExpectedEvent("0x" + "11" * 32, token)
        )
    )
    h.settle()
    assert h.store.get(ok.id).state is State.FINALIZED
    failed = h.store.get(wrong.id)
    assert failed.state is State.FAILED and failed.outcome == "no_event"


def test_would_revert_is_never_broadcast_and_its_error_is_decoded(harness: HarnessFactory, token: str) -> None:
    h = harness()
    start = nonce(h.node)
    data = transfer_data(fresh_address(), 10**40)  # more than the sender holds
    record = h.pipeline.submit(Intent("too-much", to=token, data=data))
    h.pipeline.tick()
    failed = h.store.get(record.id)
    assert failed.state is State.FAILED and failed.nonce is None
    assert "InsufficientBalance" in (failed.error or "")
    assert h.pipeline.last_revert[record.id].name == "InsufficientBalance"
    assert h.pipeline.last_revert[record.id].args[2] == 10**40
    assert h.store.attempts(record.id) == []
    assert h.metrics.simulation_reverts == 1
    assert nonce(h.node, tag="pending") == start


def test_simulation_is_pinned_to_a_block(harness: HarnessFactory) -> None:
    h = harness()
    mine(h.node, 2)
    sim = h.chain.simulate(CallRequest(SENDER, fresh_address(), b"", 1), 1)
    assert sim.ok and sim.gas == 21000


# --- token helpers --------------------------------------------------------------------------------------------
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


def transfer_data(to: str, amount: int) -> bytes:
    from eth_abi.abi import encode

    return bytes.fromhex("a9059cbb") + encode(["address", "uint256"], [to, amount])


@pytest.fixture
def token(anvil: object) -> str:
    """A TestToken deployed by the sender, with 10**24 minted to it."""
    from web3 import Web3

    from keeper.chain import artifacts

    try:
        artifact = artifacts.load("TestToken")
    except FileNotFoundError:
        pytest.skip("abis/TestToken.json not compiled")
    w3 = Web3(Web3.HTTPProvider(anvil.url))  # type: ignore[attr-defined]
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = factory.constructor("Test", "TST", 18).transact({"from": SENDER})
    address = w3.eth.get_transaction_receipt(tx)["contractAddress"]
    contract = w3.eth.contract(address=address, abi=artifact["abi"])
    w3.eth.get_transaction_receipt(contract.functions.mint(SENDER, 10**24).transact({"from": SENDER}))
    return str(address)
