"""Pure gas rules: fee history → fees, 12.5% bumps, caps. Property-tested, no chain."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from keeper.execute.gas import (
    GWEI,
    CapDecision,
    FeeHistory,
    Fees,
    GasPolicy,
    bump_base,
    cap_first_send,
    gas_limit_for,
    is_valid_bump,
    legacy_fees,
    market_fees,
    min_bump,
    replacement_fees,
)

wei = st.integers(min_value=1, max_value=10**13)
gas_limits = st.integers(min_value=21_000, max_value=10_000_000)


@st.composite
def eip1559(draw: st.DrawFn) -> Fees:
    max_fee = draw(wei)
    return Fees(max_fee=max_fee, priority_fee=draw(st.integers(min_value=0, max_value=max_fee)))


@st.composite
def policies(draw: st.DrawFn) -> GasPolicy:
    return GasPolicy(max_fee_cap=draw(wei), max_tx_fee=draw(st.integers(min_value=21_000, max_value=10**20)))


def test_market_fees_from_fee_history() -> None:
    history = FeeHistory(
        base_fees=(10 * GWEI, 11 * GWEI, 12 * GWEI),
        rewards=((1 * GWEI, 2 * GWEI, 5 * GWEI), (0, 0, 0)),
        percentiles=(10.0, 50.0, 90.0),
    )
    policy = GasPolicy(priority_floor=GWEI // 10)
    normal = market_fees(history, policy, "normal")
    assert normal == Fees(max_fee=24 * GWEI + 2 * GWEI, priority_fee=2 * GWEI)  # empty blocks are ignored
    assert market_fees(history, policy, "high").priority_fee == 5 * GWEI
    empty = FeeHistory((GWEI, GWEI), ((0, 0, 0),), (10.0, 50.0, 90.0))
    assert market_fees(empty, policy, "low").priority_fee == policy.priority_floor


def test_legacy_fallback() -> None:
    assert legacy_fees(100) == Fees(gas_price=100)
    assert legacy_fees(100, "high") == Fees(gas_price=110)
    assert min_bump(Fees(gas_price=100)) == Fees(gas_price=113)  # rounded up


@given(eip1559())
def test_min_bump_raises_both_fields_by_at_least_12_5_percent(old: Fees) -> None:
    new = min_bump(old)
    assert new.max_fee is not None and new.priority_fee is not None
    assert new.max_fee * 1000 >= old.max_fee * 1125  # type: ignore[operator]
    assert new.priority_fee * 1000 >= old.priority_fee * 1125  # type: ignore[operator]
    assert is_valid_bump(old, new)


@given(eip1559(), eip1559(), gas_limits, policies(), st.integers(min_value=0, max_value=10**13))
def test_replacement_is_a_valid_bump_never_above_the_cap_or_waits(
    old: Fees, market: Fees, gas_limit: int, policy: GasPolicy, base: int
) -> None:
    decision = replacement_fees(old, market, gas_limit, policy, base)
    if decision.wait:
        # waiting is only allowed when the minimum valid bump does not fit, or would not be includable
        need = min_bump(old)
        cap = policy.effective_cap(gas_limit)
        assert need.max_fee > cap or min(max(need.max_fee, market.max_fee), cap) < base  # type: ignore[operator,type-var]
        return
    fees = decision.fees
    assert fees is not None and fees.max_fee is not None and fees.priority_fee is not None
    assert is_valid_bump(old, fees)
    assert fees.max_fee <= policy.max_fee_cap
    assert fees.max_fee * gas_limit <= policy.max_tx_fee
    assert fees.priority_fee <= fees.max_fee
    assert fees.max_fee >= base


@given(eip1559(), gas_limits, policies(), st.integers(min_value=0, max_value=10**13))
def test_first_send_never_exceeds_the_cap(market: Fees, gas_limit: int, policy: GasPolicy, base: int) -> None:
    decision = cap_first_send(market, gas_limit, base, policy)
    if decision.fees is not None:
        assert decision.fees.per_gas_ceiling <= policy.effective_cap(gas_limit)
        assert decision.fees.per_gas_ceiling * gas_limit <= policy.max_tx_fee


def test_cap_below_the_market_waits() -> None:
    policy = GasPolicy(max_fee_cap=20 * GWEI)
    market = Fees(max_fee=200 * GWEI, priority_fee=2 * GWEI)
    assert cap_first_send(market, 21_000, 100 * GWEI, policy).wait
    clamped = cap_first_send(market, 21_000, 10 * GWEI, policy)  # includable under the cap: clamp
    assert clamped == CapDecision(Fees(max_fee=20 * GWEI, priority_fee=2 * GWEI))
    # the per-transaction cap: 21000 gas × 20 gwei > 0.0001 ETH → effective cap 4.76 gwei
    tight = GasPolicy(max_fee_cap=20 * GWEI, max_tx_fee=10**14)
    assert tight.effective_cap(21_000) == 10**14 // 21_000
    assert cap_first_send(Fees(max_fee=5 * GWEI, priority_fee=GWEI), 21_000, GWEI, tight).fees == Fees(
        max_fee=10**14 // 21_000, priority_fee=GWEI
    )


def test_replacement_at_the_cap_waits() -> None:
    policy = GasPolicy(max_fee_cap=3 * GWEI)
    old = Fees(max_fee=int(2.75 * GWEI), priority_fee=GWEI)
    assert replacement_fees(old, Fees(max_fee=100 * GWEI, priority_fee=GWEI), 21_000, policy).wait
    roomy = GasPolicy(max_fee_cap=4 * GWEI)
    got = replacement_fees(old, Fees(max_fee=100 * GWEI, priority_fee=GWEI), 21_000, roomy)
    assert got.fees == Fees(max_fee=4 * GWEI, priority_fee=1_125_000_000)


def test_gas_limit_margin_and_hint() -> None:
    assert gas_limit_for(100_000, None) == 120_000
    assert gas_limit_for(100_000, 500_000) == 500_000


@given(st.lists(eip1559(), min_size=1, max_size=6))
def test_bumping_over_the_bump_base_outbids_every_earlier_attempt(previous: list[Fees]) -> None:
    """The bump base over ALL earlier attempts: a valid bump over it is a valid bump over each of them, so a
    refused attempt is never signed again at the same fees."""
    new = min_bump(bump_base(previous, legacy=False))
    assert all(is_valid_bump(old, new) for old in previous)
    assert all(new != old for old in previous)


@given(st.lists(st.one_of(eip1559(), wei.map(lambda p: Fees(gas_price=p))), min_size=1, max_size=6))
def test_bump_base_of_a_mixed_history_clears_both_fee_fields(previous: list[Fees]) -> None:
    """Legacy and EIP-1559 attempts mixed: a legacy price counts as both fields, so either kind of new attempt
    out-bids every earlier one on the fields nodes compare (max fee / gas price and the priority fee)."""
    for legacy in (False, True):
        new = min_bump(bump_base(previous, legacy=legacy))
        assert new.legacy is legacy
        for old in previous:
            assert new.per_gas_ceiling * 1000 >= old.per_gas_ceiling * 1125
            new_tip = new.priority_fee if new.priority_fee is not None else new.per_gas_ceiling
            old_tip = old.priority_fee if old.priority_fee is not None else old.per_gas_ceiling
            assert new_tip * 1000 >= old_tip * 1125
