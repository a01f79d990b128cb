"""Hypothesis properties of decide() on random markets and books."""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from keeper.decide import Rules, decide
from keeper.decide.cycle import buffer_policy, queue
from keeper.decide.exposure import book_equity, exposure_per_glp, health_factor, holdings_exposure, marks
from keeper.decide.fit import FitInput, Holdings, closed_form, rounding_bound
from keeper.decide.triggers import band_widths
from keeper.snapshot import Memory, Snapshot
from keeper.units import USD30
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



UNCAPPED = Rules(notional_cap_usd=10**12)


def _fitted(snap: Snapshot) -> tuple[Snapshot, Memory]:
    """The scenario after one complete (uncapped) recurring cycle, with the cycle no longer due."""
    due = replace(snap, manager=replace(snap.manager, last_cycle_at=NOW - 48 * H))
    first = decide(due, dict.fromkeys(range(3), UNCAPPED))
    assert first.plan is not None
    fitted = replace(apply_plan(due, first.plan), manager=replace(snap.manager, last_cycle_at=NOW))
    return fitted, first.memory_after_execution


def _neutral(snap: Snapshot) -> bool:
    m = marks(snap)
    e = exposure_per_glp(snap, m, 10_000)
    for b in snap.books:
        x = holdings_exposure(b.glp, b.cash, b.collateral, b.debt, e)
        if not all(0 <= x[a] < 1 for a in range(3) if a != b.denomination):
            return False
    return True


@SETTINGS
@given(scenarios(), st.integers(2, 6))
def test_capped_rebalances_converge_to_the_neutral_target(snap: Snapshot, pieces: int) -> None:
    """With a notional cap that splits the largest move into `pieces`, decide → apply repeated reaches the neutral
    target within pieces + 2 ticks, then nothing fires (the partial continuation does not stall below the drift
    threshold, and the cost gate does not hold it back)."""
    due = replace(snap, manager=replace(snap.manager, last_cycle_at=NOW - 48 * H))
    free = decide(due, dict.fromkeys(range(3), UNCAPPED))
    assert free.plan is not None
    m = marks(due)
    moved = max(abs(vp.debt[i]) * m.price[i] + abs(vp.collateral[i]) * m.price[i]
                for vp in free.plan.vaults for i in range(3))
    cap = math.ceil(moved / USD30 / pieces)
    assume(cap >= 10)
    rules = {v: Rules(notional_cap_usd=cap, cost_gate_bps=0) for v in range(3)}  # any cost would defer
    d = decide(due, rules)
    assert d.plan is not None and any(vp.partial for vp in d.plan.vaults)
    event(f"pieces {pieces}")
    now, state = NOW, due
    for _ in range(pieces + 2):
        if d.plan is None:
            break
        now += 60
        state = replace(apply_plan(state, d.plan), block_timestamp=now,
                        manager=replace(state.manager, last_cycle_at=NOW))
        d = decide(state, rules, d.memory_after_execution)
    assert d.plan is None, [r.reason() for r in d.fired]
    assert d.memory.partial_targets == ()
    assert _neutral(state)


@SETTINGS
@given(scenarios(), st.sampled_from(["calm", "moved", "calm", "calm"]), st.data())
def test_no_plan_when_nothing_fired(snap: Snapshot, regime: str, data: st.DataObject) -> None:
    """From a fitted state, after price moves (mostly calm ones, so that usually nothing fires): if no trigger fired
    there is no plan, and a plan always has a fired trigger."""
    fitted, mem = _fitted(snap)
    moves = st.integers(-2, 2) if regime == "calm" else st.integers(6, 15).map(lambda x: x * (-1) ** x)
    eth_move = data.draw(moves, label="eth %")
    btc_move = data.draw(moves, label="btc %")
    dt = data.draw(st.integers(0, 2 * H - 1 if regime == "calm" else 3 * H), label="seconds")
    m = marks(fitted)
    eth = int(m.usd30[1] // 10**30 * (100 + eth_move) // 100)
    btc = int(m.usd30[2] // 10**30 * (100 + btc_move) // 100)
    moved = replace(reprice(fitted, {"WETH": eth, "WBTC": btc}), block_timestamp=NOW + dt)
    d = decide(moved, {}, mem)
    event("nothing fired" if not d.fired else "fired")
    if not d.fired:
        assert d.plan is None
        assert d.memory_after_execution == d.memory
    if d.plan is not None:
        assert d.fired


@st.composite
def stress(draw: st.DrawFn) -> tuple[int, dict[str, int]]:
    """A price move (percent per asset) aimed at one vault's health factor: the USD vault's debts rise, the ETH
    vault's WETH collateral falls, or the BTC vault's WBTC collateral falls."""
    target = draw(st.sampled_from([0, 1, 2]))
    size = draw(st.integers(30, 70))
    if target == 0:
        return target, {"WETH": 100 + size, "WBTC": 100 + draw(st.integers(size - 10, size + 10))}
    symbol = ("WETH", "WBTC")[target - 1]
    return target, {symbol: 100 - size * 2 // 3}


@SETTINGS
@given(scenarios(), stress())
def test_health_factor_plan_always_restores_target(snap: Snapshot, move: tuple[int, dict[str, int]]) -> None:
    fitted, mem = _fitted(snap)
    m = marks(fitted)
    now = {"WETH": m.usd30[1] // 10**30, "WBTC": m.usd30[2] // 10**30}
    hot = reprice(fitted, {s: int(now[s] * pct // 100) for s, pct in move[1].items()})
    d = decide(hot, {}, mem)
    fired = [r for r in d.triggers if r.trigger == "health_factor" and r.fired]
    event("health factor fired" if fired else "not fired")
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


BAND_RULES = Rules(drift_policy="bands")
REGIONS = {"inside": (99, 101), "between": (104, 108), "beyond": (40, 85), "far": (120, 300), "gone": (0, 0)}


Deviation = tuple[Fraction | None, int, int]  # (|deviation| in bps or None = infinite, inner, outer)


def _band_truth(snap: Snapshot, mem: Memory, history: dict[str, list[int]], v: int) -> dict[str, Deviation]:
    """Vault v's band deviation per volatile hedge, computed here from the pieces (uncapped closed-form target with
    the OI applied, widths from `band_widths` over the weight history plus this tick's sample)."""
    m = marks(snap)
    b = snap.books[v]
    oi = tuple(dict(mem.oi_applied).get(a.symbol) for a in snap.assets)
    e = exposure_per_glp(snap, m, 10_000, oi)
    equity = book_equity(b, m)
    q = queue(b, m, equity)
    buf = buffer_policy(b, m, equity, q, rules=BAND_RULES, invested_prev=dict(mem.invested).get(v))
    hedged = frozenset(i for i in range(3) if i != b.denomination)
    target = closed_form(FitInput(Holdings(b.glp, b.cash, b.collateral, b.debt), b.denomination, hedged, e,
                                  snap.assets[b.denomination].liquidation_threshold_bps, Fraction(3, 2), buf.trade,
                                  Fraction(10**6 * USD30), (None, None, None)), m)
    e_now = exposure_per_glp(snap, m, 10_000)
    out: dict[str, Deviation] = {}
    for a in sorted(hedged):
        asset = snap.assets[a]
        if asset.is_stable:
            continue
        sample = math.floor(e_now[a] * m.price[a] / m.glp_price * 10**6)
        inner, outer, _ = band_widths([*history[asset.symbol], sample], BAND_RULES)
        if target.debt[a] == 0:
            dev = Fraction(0) if b.debt[a] == 0 else None
        else:
            dev = abs(Fraction(b.debt[a], target.debt[a]) - 1) * 10_000
        out[asset.symbol] = (dev, inner, outer)
    return out


@SETTINGS
@given(scenarios(), st.lists(st.sampled_from(sorted(REGIONS)), min_size=3, max_size=3), st.data(),
       st.sampled_from([500, 5_000, 40_000]))
def test_band_policy_never_trades_beyond_the_outer_bound(snap: Snapshot, regions: list[str], data: st.DataObject,
                                                        amplitude: int) -> None:
    """Each band vault's deviation is computed independently; a vault with a hedge beyond its outer bound is halted
    and not in the plan, one within its outer bound is not halted, and one between the bounds trades (unless the
    cost gate defers it)."""
    fitted, mem = _fitted(snap)
    books = []
    for b, region in zip(fitted.books, regions, strict=True):
        lo, hi = REGIONS[region]
        pct = data.draw(st.integers(lo, hi), label=f"vault {b.vault_id} debt %")
        books.append(replace(b, debt=tuple(x * pct // 100 for x in b.debt)))
    moved = with_account(replace(fitted, books=tuple(books)))
    history = {s: [250_000 + data.draw(st.integers(-amplitude, amplitude)) for _ in range(48)]
               for s in ("WETH", "WBTC")}
    weights = tuple(sorted((s, NOW - (k + 1) * H, w) for s, ws in history.items() for k, w in enumerate(ws)))
    mem = replace(mem, weights=weights)
    d = decide(moved, dict.fromkeys(range(3), BAND_RULES), mem)
    in_plan = {} if d.plan is None else {vp.vault_id: vp for vp in d.plan.vaults}
    halted = {int(h.scope.split(":")[1]) for h in d.halts}
    gated = {int(r.scope.split(":")[1]) for r in d.triggers if r.trigger == "cost_gate" and r.fired}
    for v in range(3):
        truth = _band_truth(moved, mem, history, v)
        beyond = any(dev is None or dev > outer for dev, _, outer in truth.values())
        between = any(dev is not None and inner < dev <= outer for dev, inner, outer in truth.values())
        event("beyond" if beyond else "between" if between else "inside")
        if beyond:
            assert v in halted and v not in in_plan, (v, truth)
        else:
            assert v not in halted, (v, truth)
            if between:
                assert v in in_plan or v in gated, (v, truth)
