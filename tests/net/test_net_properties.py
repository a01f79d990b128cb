"""Property tests of netting, the contract model and attribution (hypothesis)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from keeper.account import attribute
from keeper.account.attribution import surplus_leak_by_vault
from keeper.net import (
    BoundTooLoose,
    ContractRevert,
    Execution,
    MandateViolation,
    NettingError,
    Oracle,
    VaultChange,
    apply_order,
    check_conservation,
    compare_notional,
    gross_notional,
    net_changes,
    separate_plans,
    split_contract,
    split_largest_remainder,
    surplus_credits,
)
from tests.net.sim import empty_book, execute_at_marks, oracle3, value_change

N = 3
DEC = (6, 18, 8)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def vault_change(draw: st.DrawFn, vault_id: int, coarse: bool) -> VaultChange:
    denom = draw(st.integers(0, N - 1))
    extra = draw(st.sets(st.integers(0, N - 1), max_size=2))
    mandate = frozenset({denom} | extra)

    def amount(i: int) -> int:
        if i not in mandate or draw(st.booleans()):
            return 0
        if coarse:  # multiples of 0.1 token: nets stay far above GMX's one-unit fee rounding
            return draw(st.integers(-10**5, 10**5)) * 10 ** (DEC[i] - 1)
        return draw(st.integers(-(10 ** (DEC[i] + 4)), 10 ** (DEC[i] + 4)))

    coll = tuple(amount(i) for i in range(N))
    debt = tuple(amount(i) for i in range(N))
    interest = tuple(draw(st.integers(0, 10**6)) if i in mandate else 0 for i in range(N))
    buffer = amount(denom)
    return VaultChange(vault_id, denom, mandate, 0, coll, debt, interest, buffer)


@st.composite
def scenario(draw: st.DrawFn, coarse: bool = False) -> tuple[list[VaultChange], Oracle, int, int]:
    k = draw(st.integers(1, 6))
    ids = draw(st.lists(st.integers(0, 50), min_size=k, max_size=k, unique=True))
    changes = [draw(vault_change(v, coarse)) for v in ids]
    fee = draw(st.integers(0, 100))
    slip = draw(st.integers(1 if coarse else 0, 60))
    max_slip = fee + slip + draw(st.integers(1, 100))
    return changes, oracle3(fee), slip, max_slip


def _net(changes: list[VaultChange], oracle: Oracle, slip: int, max_slip: int):  # type: ignore[no-untyped-def]
    try:
        return net_changes(changes, oracle, slippage_bps=slip, max_slippage_bps=max_slip, deadline=1)
    except BoundTooLoose:
        # documented (docs/netting.md §3): a leg worth below ~1e-14 USD can fail the exact bound through
        # the one-unit rounding and raises instead of reverting on chain; anything larger is a bug
        nets = [sum(c.debt[i] - c.collateral[i] - (c.buffer if i == c.denomination else 0) for c in changes)
                for i in range(N)]
        assume(not any(0 < abs(oracle.token_value(i, x)) < 10**17 for i, x in enumerate(nets)))
        raise


@SETTINGS
@given(scenario())
def test_conservation_holds_by_construction(s: tuple[list[VaultChange], Oracle, int, int]) -> None:
    changes, oracle, slip, max_slip = s
    plan = _net(changes, oracle, slip, max_slip)
    order = plan.order
    check_conservation(order, unassigned_debt=order.interest)  # all four identities, as the contract checks
    assert len({leg.asset for leg in order.glp}) == len(order.glp)
    for d in order.deltas:  # only mandate instruments move (no sweep here)
        c = next(c for c in changes if c.vault_id == d.vault)
        for i in range(N):
            if i not in c.mandate:
                assert d.cash[i] == d.collateral[i] == d.debt[i] == 0
    # every vault gets exactly the tokens it frees/needs; cash is only the buffer
    for c in changes:
        f = plan.flow(c.vault_id)
        assert f.tokens == tuple(c.debt[i] - c.collateral[i] - (c.buffer if i == c.denomination else 0)
                                 for i in range(N))
    with pytest.raises(ContractRevert):
        if any(order.interest):
            check_conservation(order, unassigned_debt=tuple(max(x - 1, 0) for x in order.interest))
        else:
            raise ContractRevert("skip")


@SETTINGS
@given(scenario(coarse=True))
def test_netting_never_executes_more_than_separately(s: tuple[list[VaultChange], Oracle, int, int]) -> None:
    changes, oracle, slip, max_slip = s
    plan = _net(changes, oracle, slip, max_slip)
    cmp = compare_notional(plan)
    separate = separate_plans(changes, oracle, slippage_bps=slip, max_slippage_bps=max_slip, deadline=1)
    assert gross_notional(plan) <= sum((gross_notional(p) for p in separate), Fraction(0))
    assert cmp.netted_usd30 <= cmp.separate_usd30
    assert cmp.separate_txs == sum(1 for p in separate if p.order.deltas)
    assert cmp.netted_txs <= 1


@SETTINGS
@given(scenario(coarse=True), st.sampled_from([0, 0, 0, 5]), st.integers(0, 10**15), st.integers(1, 10**11))
def test_fees_gas_exact_and_no_leakage(
    s: tuple[list[VaultChange], Oracle, int, int], bonus: int, gas_used: int, gas_price: int
) -> None:
    changes, oracle, slip, max_slip = s
    plan = _net(changes, oracle, slip, max_slip)
    order = plan.order
    executed = execute_at_marks(order, oracle, bonus_bps=bonus)
    books = tuple(empty_book(d.vault, 0, N) for d in order.deltas)
    after = apply_order(books, order, executed)  # every leg with a surplus has a vault on its side
    # each leg's surplus lands only with the vaults that traded through that leg, on its side
    credits = surplus_credits(order, executed)
    mint_assets = {leg.asset for leg in order.glp if leg.glp > 0}
    redeem_assets = {leg.asset for leg in order.glp if leg.glp < 0}
    for v, (extra_glp, extra_cash) in credits.items():
        tokens = plan.flow(v).tokens
        if extra_glp:
            assert any(tokens[i] > 0 for i in mint_assets)
        for i, x in enumerate(extra_cash):
            assert x == 0 or (i in redeem_assets and tokens[i] < 0)
    rec = attribute(plan, Execution(executed, gas_used, gas_price), rebalance_id=1)
    for i in range(N):
        assert sum(v.fee_tokens[i] for v in rec.vaults) == sum(e.fee_tokens for e in executed if e.asset == i)
    assert sum(v.gas_wei for v in rec.vaults) + rec.unattributed_gas_wei == gas_used * gas_price
    assert rec.unattributed_gas_wei == (0 if order.deltas else gas_used * gas_price)
    # fee only on the side of the net trade
    for leg in order.glp:
        for v in rec.vaults:
            if plan.flow(v.vault_id).tokens[leg.asset] * leg.glp <= 0:
                assert v.fee_tokens[leg.asset] == 0
    if bonus:
        return  # the market paid above the marks: that gain is not a cost; the identity below is at the marks
    # No leakage: the surplus each leg pays above its minimum goes, by the contract's own per-leg rule,
    # exactly where the fair split says — zero for every vault, to the unit.
    leak = surplus_leak_by_vault(plan, Execution(executed, 0, 0))
    assert all(value == 0 for value in leak.values()), leak
    assert all(v.surplus_leak_usd30 == 0 for v in rec.vaults)
    # value change at the marks == −(fee share) + (contract surplus − fair surplus), up to rounding units
    unit = max(oracle.token_unit_price(i) for i in range(N)) + oracle.glp_unit_price()
    tol = (len(order.deltas) + 4) * unit
    for before, post, v in zip(books, after, rec.vaults, strict=True):
        c = next(c for c in changes if c.vault_id == v.vault_id)
        fee_value = sum((oracle.token_value(i, x) for i, x in enumerate(v.fee_tokens)), Fraction(0))
        dv = value_change(before, post, oracle, c.interest)
        assert abs(dv + fee_value - leak[v.vault_id]) <= tol, (v.vault_id, dv, fee_value, leak[v.vault_id])


@SETTINGS
@given(st.integers(0, 10**30), st.dictionaries(st.integers(0, 20), st.integers(0, 10**24), min_size=1))
def test_splits_sum_exactly(total: int, weights: dict[int, int]) -> None:
    assume(sum(weights.values()) > 0)
    a = split_largest_remainder(total, weights)
    b = split_contract(total, weights)
    assert sum(a.values()) == total == sum(b.values())
    w = sum(weights.values())
    for k, wk in weights.items():
        assert abs(a[k] - Fraction(total * wk, w)) < 1


def test_change_outside_mandate_raises() -> None:
    bad = VaultChange(1, 0, frozenset({0}), 0, (0, 5, 0), (0, 0, 0), (0, 0, 0), 0)
    with pytest.raises(MandateViolation):
        net_changes([bad], oracle3(), slippage_bps=10, max_slippage_bps=100, deadline=1)


def test_bound_too_loose_rejected_before_building() -> None:
    c = VaultChange(1, 0, frozenset({0}), 0, (0, 0, 0), (10**6, 0, 0), (0, 0, 0), 0)
    with pytest.raises(NettingError):
        net_changes([c], oracle3(fee_bps=30), slippage_bps=80, max_slippage_bps=100, deadline=1)


def test_stray_cash_is_swept_into_glp() -> None:
    book = empty_book(4, 0, N, cash=0)
    book = book.__class__(**{**book.__dict__, "cash": (0, 5 * 10**17, 0)})
    plan = net_changes([], oracle3(), slippage_bps=10, max_slippage_bps=100, deadline=1,
                       books={4: book}, sweep_stray=True)
    (d,) = plan.order.deltas
    assert d.cash == (0, -5 * 10**17, 0) and d.glp[1] > 0 and d.glp[0] == d.glp[2] == 0
    assert plan.order.glp[0].asset == 1 and plan.order.glp[0].token_amount == 5 * 10**17
    check_conservation(plan.order, (0, 0, 0))
