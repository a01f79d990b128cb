"""LYF planner: closed form vs a numerical solver; integer execution hits target and neutrality."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.decide.lyf import LyfRules, LyfState, closed_form, plan, position, triggers

E18, E6 = 10**18, 10**6
BPS = 10_000


def unit_price(usd: Fraction) -> Fraction:
    """Stable smallest units (6 dec) per volatile smallest unit (18 dec)."""
    return usd * E6 / E18


def levered_state(
    move: Fraction = Fraction(1), debt_growth: Fraction = Fraction(1), rewards: int = 0, pool_scale: int = 1
) -> LyfState:
    """3× neutral position (equity 1M USDC) holding 75k AVAX + 1.5M USDC of LP in a pool of
    250k AVAX / 5M USDC × `pool_scale` at $20; then the pool and oracle move by `move` (an arbitrageur
    trades along x·y = k) and debts grow by `debt_growth`."""
    big_x, big_y, supply = 250_000 * E18 * pool_scale, 5_000_000 * E6 * pool_scale, 1_000_000 * E18
    lp = supply * 3 // (10 * pool_scale)
    dv, ds = 75_000 * E18, 500_000 * E6  # equity = 3M − 1.5M − 0.5M = 1M: leverage 3, delta 0
    p = unit_price(20 * move)
    k = big_x * big_y
    new_x = math.isqrt(k * p.denominator // p.numerator)
    new_y = k // new_x
    dv, ds = int(dv * debt_growth), int(ds * debt_growth)
    return LyfState(new_x, new_y, supply, lp, dv, ds, rewards, p.numerator, p.denominator)


def test_price_rise_of_10_percent_drifts_leverage_up() -> None:
    assert position(levered_state()).leverage == 3
    drifted = position(levered_state(Fraction(11, 10)))
    # 3.158 for this split (half the debt volatile, half stable); the issue's "about 3.3" is the same
    # drift for a position with more of its debt in the volatile asset.
    assert Fraction(315, 100) < drifted.leverage < Fraction(316, 100)
    assert drifted.delta < 0  # LP holds less AVAX than the debt: net short


def numeric(s: LyfState, target: Fraction) -> tuple[Fraction, Fraction]:
    """Independent solver: nested bisection on the continuous pool math (no closed form used)."""
    pos = position(s)
    x, y = pos.volatile_in_lp, pos.stable_in_lp
    gamma = Fraction(BPS - s.fee_bps, BPS)

    def after(u: Fraction, d: Fraction) -> tuple[Fraction, Fraction, Fraction, Fraction]:
        x1 = s.reserve_volatile - (1 - u) * x
        y1 = s.reserve_stable - (1 - u) * y
        if d >= 0:
            sigma = y1 * d / (gamma * (x1 - d))  # stable in for d volatile out
            x2, y2 = x1 - d, y1 + sigma
        else:
            out = gamma * -d * y1 / (x1 + gamma * -d)
            sigma = -out
            x2, y2 = x1 - d, y1 - out
        xf, yf = u * x * x2 / x1, u * y * y2 / y1
        dv = s.debt_volatile - (1 - u) * x - d
        ds = s.debt_stable - (1 - u) * y + sigma - s.pending_rewards_stable
        return xf, yf, dv, ds

    def delta_for(u: Fraction) -> Fraction:
        lo, hi = Fraction(-x), Fraction(x)
        for _ in range(75):
            mid = (lo + hi) / 2
            xf, _, dv, _ = after(u, mid)
            if xf - dv > 0:  # too much volatile kept vs debt → buy less
                hi = mid
            else:
                lo = mid
        return (lo + hi) / 2

    def lev(u: Fraction) -> Fraction:
        xf, yf, dv, ds = after(u, delta_for(u))
        assets = xf * s.price + yf
        return assets / (assets - dv * s.price - ds)

    lo, hi = Fraction(0), Fraction(1)
    for _ in range(60):
        mid = (lo + hi) / 2
        if lev(mid) > target:
            hi = mid
        else:
            lo = mid
    u = (lo + hi) / 2
    return u, delta_for(u)


@pytest.mark.parametrize("move", [Fraction(11, 10), Fraction(9, 10), Fraction(13, 10)])
def test_closed_form_matches_numerical_solver(move: Fraction) -> None:
    s = levered_state(move, debt_growth=Fraction(1002, 1000))
    u, delta, _ = closed_form(s, Fraction(3))
    nu, ndelta = numeric(s, Fraction(3))
    if u > 1:  # a fall lowers leverage: deleveraging cannot reach 3, the solver saturates at u = 1
        assert nu > 1 - Fraction(1, 10**12)
        return
    assert abs(u - nu) < Fraction(1, 10**12)
    assert abs(delta - ndelta) <= abs(ndelta) * Fraction(1, 10**9) + 1


def test_large_pool_share_borrows_stable_to_fund_the_buy_back() -> None:
    s = levered_state(Fraction(11, 10))  # 30% of the pool: buying back moves the price a lot
    p = plan(s, LyfRules())
    assert abs(p.final_delta) <= 1
    assert Fraction(3) - Fraction(1, 10**6) < p.final_leverage <= 3
    assert p.repay_stable < 0  # the removal's stable does not cover the swap: borrow the rest


def test_price_fall_plan_fixes_delta_and_stays_below_target() -> None:
    s = levered_state(Fraction(9, 10))
    p = plan(s, LyfRules())
    assert abs(p.final_delta) <= 1
    assert p.volatile_to_swap > 0 and p.stable_to_swap == 0 and p.lp_to_remove > 0
    assert p.final_leverage < 3


@pytest.mark.parametrize("move", [Fraction(11, 10), Fraction(12, 10)])
def test_integer_plan_reaches_target_and_neutrality(move: Fraction) -> None:
    s = levered_state(move, debt_growth=Fraction(1001, 1000), rewards=20_000 * E6, pool_scale=10)
    p = plan(s, LyfRules())
    assert p.final_leverage <= 3  # rounding never leaves it above target
    assert abs(p.final_leverage - 3) < Fraction(1, 10**6)
    assert abs(p.final_delta) <= 1  # volatile LP amount equals the volatile debt within one unit
    assert p.stable_to_swap > 0 and p.volatile_to_swap == 0  # price rose: buy volatile
    assert p.min_out == p.expected_out * 9950 // BPS
    assert p.slippage_bps > 30  # fee (30 bps) plus price impact


@settings(max_examples=20, deadline=None)
@given(
    move=st.fractions(min_value=Fraction(80, 100), max_value=Fraction(125, 100)),
    growth=st.fractions(min_value=Fraction(1), max_value=Fraction(102, 100)),
    target_bps=st.integers(min_value=20_000, max_value=35_000),
)
def test_closed_form_equals_numeric_on_random_states(move: Fraction, growth: Fraction, target_bps: int) -> None:
    s = levered_state(move, growth)
    target = Fraction(target_bps, BPS)
    u, delta, _ = closed_form(s, target)
    if not 0 <= u <= 1:
        return  # target not reachable by deleveraging from this state (planner caps u at 1)
    nu, ndelta = numeric(s, target)
    assert abs(u - nu) < Fraction(1, 10**12)
    assert abs(delta - ndelta) <= abs(ndelta) * Fraction(1, 10**9) + 1


def test_triggers_edges_and_no_plan_inside_band() -> None:
    rules = LyfRules()
    calm = levered_state()
    assert not triggers(calm, rules, last_price=calm.price).fired
    moved = levered_state(Fraction(11, 10))
    fired = triggers(moved, rules, last_price=calm.price)
    assert fired.fired
    assert any("price moved 1000 bps" in r for r in fired.reasons)
    assert any(r.startswith("leverage 3.") for r in fired.reasons)
    slight = levered_state(Fraction(1005, 1000))
    assert not triggers(slight, rules, last_price=calm.price).fired  # within band, small move, small delta


def test_keeper_plan_accepts_an_lyf_snapshot(tmp_path: object) -> None:
    import json
    import subprocess
    import sys
    from dataclasses import asdict
    from pathlib import Path

    s = levered_state(Fraction(11, 10), debt_growth=Fraction(1001, 1000), rewards=20_000 * E6, pool_scale=10)
    calm = levered_state()
    path = Path(str(tmp_path)) / "lyf.json"
    path.write_text(json.dumps({"kind": "lyf", **asdict(s), "last_price_num": calm.price_num,
                                "last_price_den": calm.price_den}))
    out = subprocess.run([sys.executable, "-m", "keeper.cli", "plan", "--snapshot", str(path), "--format", "json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    expected = plan(s, LyfRules())
    assert result["plan"]["lp_to_remove"] == expected.lp_to_remove
    assert result["plan"]["repay_volatile"] == expected.repay_volatile
    assert any("price moved" in r for r in result["fired"])
    path.write_text(json.dumps({"kind": "lyf", **{**asdict(s), "lp_supply": "many"}}))
    bad = subprocess.run([sys.executable, "-m", "keeper.cli", "plan", "--snapshot", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "lp_supply: expected a non-negative integer" in bad.stderr


def test_cost_gate_defers_a_marginal_rebalance_and_the_deadline_overrides_it() -> None:
    s = levered_state(Fraction(1005, 1000))  # small move: delta just beyond a tight tolerance
    tight = LyfRules(delta_tolerance_bps=10)
    assert triggers(s, tight, None).fired  # cheap relative to what it corrects: goes ahead
    gated = triggers(s, tight, None, gas_cost_stable=10**12)  # $1M of gas for a tiny correction
    assert not gated.fired and "deferred by the cost gate" in gated.reasons[-1]
    due = triggers(s, tight, None, gas_cost_stable=10**12, now=200_000, last_rebalance_at=200_000 - 48 * 3600)
    assert due.fired and any(r.startswith("deadline") for r in due.reasons)
