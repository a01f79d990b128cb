"""Pure parts: state machine, send-error classification, reconciliation analysis, backoff, revert decoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keeper.execute.chain import EndpointHealth, backoff_delay, rank, redact_url
from keeper.execute.classify import SendError, classify_send_error
from keeper.execute.reconcile import JournalNonce, plan_reconciliation
from keeper.execute.revert import ErrorDecoder, ErrorSpec
from keeper.store.model import TERMINAL, TRANSITIONS, InvalidTransition, State, check_transition, final_state


def test_terminal_states_have_no_exit_and_every_state_is_reachable() -> None:
    for state in TERMINAL:
        assert TRANSITIONS[state] == frozenset()
    reachable = {State.PLANNED}
    frontier = [State.PLANNED]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert reachable == set(State)


def test_happy_path_and_forbidden_jumps() -> None:
    path = [State.PLANNED, State.SIMULATED, State.SIGNED, State.BROADCAST, State.MINED, State.CONFIRMED]
    for a, b in zip(path, [*path[1:], State.FINALIZED], strict=True):
        assert check_transition(a, b) is b
    for bad in [(State.PLANNED, State.BROADCAST), (State.SIGNED, State.CANCELLED), (State.FINALIZED, State.MINED)]:
        with pytest.raises(InvalidTransition):
            check_transition(*bad)
    # a mined intent can only leave mined/confirmed through a reorg (back to broadcast) or finality
    assert State.BROADCAST in TRANSITIONS[State.MINED] and State.BROADCAST in TRANSITIONS[State.CONFIRMED]
    assert final_state("success") is State.FINALIZED
    assert final_state("cancelled") is State.CANCELLED
    assert final_state("reverted") is State.FAILED and final_state("no_event") is State.FAILED


@pytest.mark.parametrize(
    ("message", "kind", "action"),
    [
        ("already known", "already_known", "retry"),
        ("transaction already imported", "already_known", "retry"),
        ("nonce too low", "nonce_too_low", "retry"),
        ("replacement transaction underpriced", "underpriced", "replace"),
        ("max fee per gas less than block base fee", "fee_too_low", "replace"),
        ("insufficient funds for gas * price + value", "insufficient_funds", "give_up"),
        ("Insufficient funds for gas * price + value", "insufficient_funds", "give_up"),
        ("execution reverted: custom error 0xdb42144d", "reverted", "give_up"),
        ("intrinsic gas too low", "rejected", "give_up"),
        ("upstream connect error", "transient", "retry"),
    ],
)
def test_send_error_classification(message: str, kind: str, action: str) -> None:
    outcome = classify_send_error(message, -32000)
    assert (outcome.kind, outcome.action) == (kind, action)
    assert SendError(outcome).action == action


def test_http_5xx_and_429_are_transient() -> None:
    assert classify_send_error("nonce too low", http_status=502).kind == "transient"
    assert classify_send_error("slow down", http_status=429).kind == "transient"


held_lists = st.lists(
    st.builds(
        JournalNonce,
        nonce=st.integers(min_value=0, max_value=40),
        intent_id=st.integers(min_value=1, max_value=10**6),
        has_signed_tx=st.booleans(),
        on_chain_state=st.booleans(),
    ),
    max_size=15,
    unique_by=lambda h: h.nonce,
)


@given(st.integers(min_value=0, max_value=30), st.integers(min_value=0, max_value=20), held_lists)
def test_reconciliation_leaves_no_gap(latest: int, extra_pending: int, drawn: list[JournalNonce]) -> None:
    held = [JournalNonce(h.nonce, i + 1, h.has_signed_tx, h.on_chain_state) for i, h in enumerate(drawn)]
    plan = plan_reconciliation(latest, latest + extra_pending, held)
    covered = {h.nonce for h in held if h.nonce >= latest} | set(plan.gaps)
    top = max(covered, default=latest - 1)
    assert covered == set(range(latest, top + 1))  # contiguous from the chain's count: no gap remains
    assert not set(plan.gaps) & {h.nonce for h in held}
    by_intent = {s.intent_id: s.action for s in plan.steps if s.intent_id is not None}
    for h in held:
        expected = (
            ("watch_mined" if h.on_chain_state else "check_mined")
            if h.nonce < latest
            else ("rebroadcast" if h.has_signed_tx else "resume")
        )
        assert by_intent[h.intent_id] == expected
    assert plan.foreign_pending >= 0


def test_reconciliation_example() -> None:
    held = [JournalNonce(3, 1, True, False), JournalNonce(5, 2, False, False), JournalNonce(1, 3, True, True)]
    plan = plan_reconciliation(3, 9, held)
    assert [(s.nonce, s.action) for s in plan.steps] == [
        (1, "watch_mined"),
        (3, "rebroadcast"),
        (4, "fill_gap"),
        (5, "resume"),
    ]
    assert plan.foreign_pending == 3  # pending 9 > our next nonce 6


@given(st.integers(min_value=0, max_value=20), st.floats(min_value=0, max_value=0.999999))
def test_backoff_is_bounded_and_jittered(attempt: int, jitter: float) -> None:
    delay = backoff_delay(attempt, 0.1, 2.0, jitter)
    ceiling = min(2.0, 0.1 * 2**attempt)
    assert ceiling / 2 <= delay <= ceiling


def test_endpoint_ranking_prefers_healthy_fresh_fast() -> None:
    a = EndpointHealth("a", head=100, chain_id_ok=True, latency_ewma=0.2)
    b = EndpointHealth("b", head=100, chain_id_ok=True, latency_ewma=0.05)
    lagging = EndpointHealth("lag", head=90, chain_id_ok=True, latency_ewma=0.01)
    wrong = EndpointHealth("wrong", head=100, chain_id_ok=False)
    failing = EndpointHealth("failing", head=100, chain_id_ok=True, consecutive_failures=3)
    assert rank([a, b, lagging, wrong, failing], max_lag=3) == [1, 0, 4, 2]


def test_urls_are_redacted() -> None:
    assert redact_url("https://user:pass@node.example/v3/SECRETKEY") == "https://node.example"
    assert redact_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"


def test_revert_decoding_from_all_abis() -> None:
    decoder = ErrorDecoder.from_abi_dir()
    data = bytes.fromhex("db42144d") + bytes(12) + bytes.fromhex("f39fd6e51aad88f6f4ce6ab8827279cfffb92266")
    data += (0).to_bytes(32, "big") + (5).to_bytes(32, "big")
    decoded = decoder.decode(data)
    assert decoded.name == "InsufficientBalance" and decoded.args[1:] == (0, 5)
    assert "TestToken" in decoded.contracts
    error_string = (
        bytes.fromhex("08c379a0") + (32).to_bytes(32, "big") + (3).to_bytes(32, "big") + b"bad".ljust(32, b"\0")
    )
    assert decoder.decode(error_string).describe() == "Error(reason=bad)"
    assert decoder.decode(bytes.fromhex("4e487b71") + (0x11).to_bytes(32, "big")).args == ("0x11",)
    assert decoder.decode(b"").name == "EmptyRevert"
    assert decoder.decode(bytes.fromhex("deadbeef")).name == "UnknownError"


def test_custom_decoder_tuple_types() -> None:
    spec = ErrorSpec("X", "Bad", ("(uint256,address)",), ("pair",))
    assert spec.signature == "Bad((uint256,address))"
