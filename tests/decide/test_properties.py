"""Hypothesis properties of decide() on random markets and books."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keeper.decide import Rules, decide
from keeper.decide.exposure import book_equity, exposure_per_glp, health_factor, holdings_exposure, marks
from keeper.decide.fit import FitInput, Holdings, rounding_bound
from keeper.snapshot import Snapshot
from tests.decide.builders import NOW, apply_plan, book, market, reprice, with_account

H = 3600
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def scenarios(draw: st.DrawFn) -> Snapshot:
    """Three vaults with random equity, some already invested at random (non-neutral) positions."""
    eth = draw(st.integers(1000, 6000))
    btc = draw(st.integers(20_000, 120_000))
    books = []
    for v, d in enumerate((0, 1, 2)):
        usd = draw(st.integers(1_000, 5_000_000))
        glp_usd = draw(st.integers(0, usd))  # part already in GLP (at $1), the rest in the buffer
        price, scale = ((1, 10**6), (eth, 10**18), (btc, 10**8))[d]
        cash = [0, 0, 0]
        cash[d] = (usd - glp_usd) * scale // price
        hedge = draw(st.integers(0, 100))  # % of a rough hedge already on
        debt = [0, 0, 0]
        coll = [0, 0, 0]
        if glp_usd and hedge:
            for a, price, dec in ((0, 1, 6), (1, eth, 18), (2, btc, 8)):
                if a != d:
                    debt[a] = glp_usd * hedge * 10**dec // (100 * 4 * price)
            debt_usd = sum(debt[a] * p // 10**dec for a, p, dec in ((0, 1, 6), (1, eth, 18), (2, btc, 8)))
            coll[d] = 2 * debt_usd * (10**6, 10**18, 10**8)[d] // (1, eth, btc)[d]
            # collateral was bought with extra denomination tokens
        books.append(book(v, d, glp=glp_usd * 10**18, cash=tuple(cash), collateral=tuple(coll), debt=tuple(debt)))
    snap = market(books=tuple(books))
    return with_account(reprice(snap, {"WETH": eth, "WBTC": btc}) if (eth, btc) != (3000, 60_000) else snap)


def _fit_input(snap: Snapshot, v: int) -> FitInput:
    b = snap.books[v]
    m = marks(snap)
    return FitInput(Holdings(b.glp, b.cash, b.collateral, b.debt), b.denomination,
                    frozenset(i for i in range(3) if i != b.denomination), exposure_per_glp(snap, m, 10_000),
                    snap.assets[b.denomination].liquidation_threshold_bps, Fraction(3, 2), 0, Fraction(0),
                    (None, None, None))


@SETTINGS
@given(scenarios())
def test_cycle_fit_is_neutral_keeps_equity_and_reaches_target_hf(snap: Snapshot) -> None:
    due = replace(snap, manager=replace(snap.manager, last_cycle_at=NOW - 48 * H))
    d = decide(due, {v: Rules(notional_cap_usd=10**12) for v in range(3)})
    assert d.plan is not None
    after = apply_plan(due, d.plan)
    m = marks(after)
    e = exposure_per_glp(after, m, 10_000)
    for before_b, b in zip(due.books, after.books, strict=True):
        vp = d.plan.vault(b.vault_id)
        assert not vp.partial
        x = holdings_exposure(b.glp, b.cash, b.collateral, b.debt, e)
        for a in range(3):
            if a != b.denomination:
                assert 0 <= x[a] < 1, (b.vault_id, a, x[a])  # neutral within one smallest unit
        # equity unchanged by the fit at oracle prices, within the documented rounding bound
        bound = rounding_bound(_fit_input(due, before_b.vault_id), m)
        assert abs(book_equity(b, m) - book_equity(before_b, m)) <= bound
        hf = health_factor(b.collateral, b.debt, after, m)
        assert hf is None or hf >= Fraction(3, 2)


@SETTINGS
@given(scenarios(), st.integers(1, 200_000))
def test_caps_make_partial_fits_that_keep_equity_and_hf(snap: Snapshot, cap: int) -> None:
    due = replace(snap, manager=replace(snap.manager, last_cycle_at=NOW - 48 * H))
    rules = {v: Rules(notional_cap_usd=cap) for v in range(3)}
    d = decide(due, rules)
    assert d.plan is not None
    after = apply_plan(due, d.plan)
    m = marks(after)
    for before_b, b in zip(due.books, after.books, strict=True):
        vp = d.plan.vault(b.vault_id)
        bound = rounding_bound(_fit_input(due, before_b.vault_id), m) + 4 * max(m.price) + 2 * m.glp_price
        assert abs(book_equity(b, m) - book_equity(before_b, m)) <= bound
        hf = health_factor(b.collateral, b.debt, after, m)
        assert hf is None or hf >= Fraction(3, 2)
        if vp.partial:
            assert any("partial fit" in r for r in vp.reasons)


@SETTINGS
@given(scenarios(), st.integers(-15, 15), st.integers(-15, 15), st.integers(0, 3 * H))
def test_no_plan_when_nothing_fired(snap: Snapshot, eth_move: int, btc_move: int, dt: int) -> None:
    """From a fitted state, after small price moves: if no trigger fired there is no plan."""
    first = decide(replace(snap, manager=replace(snap.manager, last_cycle_at=NOW - 48 * H)), {})
    assert first.plan is not None
    fitted = replace(apply_plan(snap, first.plan), manager=replace(snap.manager, last_cycle_at=NOW))
    m = marks(fitted)
    eth = int(m.usd30[1] // 10**30 * (100 + eth_move) // 100)
    btc = int(m.usd30[2] // 10**30 * (100 + btc_move) // 100)
    moved = replace(reprice(fitted, {"WETH": eth, "WBTC": btc}), block_timestamp=NOW + dt)
    d = decide(moved, {}, first.memory_after_execution)
    if not d.fired:
        assert d.plan is None
    if d.plan is not None:
        assert d.fired


@SETTINGS
@given(scenarios(), st.integers(20, 80))
def test_health_factor_plan_always_restores_target(snap: Snapshot, rise: int) -> None:
    first = decide(replace(snap, manager=replace(snap.manager, last_cycle_at=NOW - 48 * H)), {})
    assert first.plan is not None
    fitted = apply_plan(snap, first.plan)
    m = marks(fitted)
    hot = reprice(fitted, {"WETH": int(m.usd30[1] // 10**30 * (100 + rise) // 100)})
    d = decide(hot, {}, first.memory_after_execution)
    fired = [r for r in d.triggers if r.trigger == "health_factor" and r.fired]
    if not fired:
        return
    assert d.plan is not None
    after = apply_plan(hot, d.plan)
    m2 = marks(after)
    in_plan = {v.vault_id for v in d.plan.vaults}
    assert {int(r.scope.split(":")[1]) for r in fired if r.scope.startswith("vault:")} <= in_plan
    for b in after.books:
        hf = health_factor(b.collateral, b.debt, after, m2)
        if b.vault_id in in_plan:
            assert hf is None or hf >= Fraction(3, 2)  # every refit vault at or above target
        else:
            assert hf is None or hf >= Fraction(6, 5)  # untouched vaults were not below the trigger
    if any(r.scope.startswith("account") for r in fired):
        assert after.lending.health_factor >= 15 * 10**17  # account trigger: every vault refit
    else:
        assert after.lending.health_factor >= 12 * 10**17


@SETTINGS
@given(scenarios(), st.lists(st.integers(0, 300), min_size=3, max_size=3),
       st.lists(st.integers(-40, 40), min_size=48, max_size=48))
def test_band_policy_never_trades_beyond_the_outer_bound(snap: Snapshot, scale: list[int],
                                                        history: list[int]) -> None:
    first = decide(replace(snap, manager=replace(snap.manager, last_cycle_at=NOW - 48 * H)), {})
    assert first.plan is not None
    fitted = apply_plan(snap, first.plan)
    books = tuple(replace(b, debt=tuple(x * scale[b.vault_id] // 100 for x in b.debt)) for b in fitted.books)
    moved = with_account(replace(fitted, books=books))
    mem = first.memory_after_execution
    weights = tuple(sorted((s, NOW - (k + 1) * H, 250_000 + w * 1000) for s in ("WETH", "WBTC")
                           for k, w in enumerate(history)))
    mem = replace(mem, weights=weights)
    d = decide(moved, {v: Rules(drift_policy="bands") for v in range(3)}, mem)
    in_plan = set() if d.plan is None else {v.vault_id for v in d.plan.vaults}
    for r in d.triggers:
        if r.trigger == "band" and r.action == "halt":
            vault = int(r.scope.split(":")[1])
            assert vault not in in_plan
            _inner, outer = (int(x) for x in r.threshold.split("/"))
            assert r.value == "inf" or Fraction(r.value) > outer
