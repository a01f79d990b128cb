"""Every trigger just below, at and just above its threshold (pure trigger functions)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from keeper.decide import triggers as t
from keeper.decide.rules import Rules
from keeper.errors import InputError

H = 3600


@pytest.mark.parametrize(("elapsed", "fired"), [(48 * H - 1, False), (48 * H, True), (48 * H + 1, True)])
def test_cycle_due_at_48h(elapsed: int, fired: bool) -> None:
    r = t.cycle(1_000_000 + elapsed, 1_000_000, 48 * H)
    assert r.fired is fired
    assert (r.value, r.threshold, r.since) == (str(elapsed), "172800", 1_000_000)
    assert r.action == ("cycle" if fired else "none")


@pytest.mark.parametrize(("drift", "fired"), [(Fraction(499, 10_000), False), (Fraction(500, 10_000), False),
                                              (Fraction(501, 10_000), True), (None, True)])
def test_delta_drift_is_strictly_more_than_5pct(drift: Fraction | None, fired: bool) -> None:
    r = t.delta_drift(3, "WETH", drift, 500)
    assert r.fired is fired
    assert r.scope == "vault:3:WETH"
    assert r.value == ("inf" if drift is None else str(int(drift * 10_000)))


@pytest.mark.parametrize(("hf", "fired"), [(12 * 10**17 - 1, True), (12 * 10**17, False), (12 * 10**17 + 1, False)])
def test_health_factor_strictly_below_1_2(hf: int, fired: bool) -> None:
    r = t.health_factor(hf, 12 * 10**17)
    assert r.fired is fired
    assert r.threshold == "1.2"


def test_health_factor_without_debt_reads_inf() -> None:
    r = t.health_factor(2**256 - 1, 12 * 10**17)
    assert (r.fired, r.value) == (False, "inf")


@pytest.mark.parametrize(("pnl", "fired"), [(499, False), (500, True), (501, True), (-499, False), (-500, True)])
def test_hedge_pnl_at_least_5pct_of_equity(pnl: int, fired: bool) -> None:
    equity = Fraction(10_000 * 10**30)
    r = t.hedge_pnl(1, pnl * 10**30, equity, 500)  # pnl USD on 10,000 USD equity: bps = pnl / 1
    assert r.fired is fired
    assert r.value == str(abs(pnl) // 1 * 10_000 // 10_000)
    assert ("profit" if pnl > 0 else "loss") in r.detail


@pytest.mark.parametrize(("drift_bps", "held", "fired"), [
    (499, 10 * H, False),  # below the drift threshold: never, and the timer is dropped
    (500, 2 * H - 1, False),  # at the threshold, one second short of 2h
    (500, 2 * H, True),  # at the threshold for exactly 2h
    (501, 2 * H + 1, True),
])
def test_net_oi_drift_and_hold(drift_bps: int, held: int, fired: bool) -> None:
    start = 5_000
    r, since = t.net_oi("WETH", Fraction(drift_bps, 10_000), start, now=start + held, drift_bps=500,
                        hold_seconds=2 * H)
    assert r.fired is fired
    assert since == (None if drift_bps < 500 else start)


def test_net_oi_timer_starts_now_and_resets_when_drift_falls_back() -> None:
    r, since = t.net_oi("WETH", Fraction(6, 100), None, now=100, drift_bps=500, hold_seconds=2 * H)
    assert (r.fired, since, r.since) == (False, 100, 100)
    r, since = t.net_oi("WETH", Fraction(4, 100), since, now=100 + 3 * H, drift_bps=500, hold_seconds=2 * H)
    assert (r.fired, since) == (False, None)


def test_oi_drift_ratio() -> None:
    assert t.oi_drift_ratio(Fraction(1050), 1000) == Fraction(5, 100)
    assert t.oi_drift_ratio(Fraction(-950), -1000) == Fraction(5, 100)
    assert t.oi_drift_ratio(Fraction(0), 0) == 0
    assert t.oi_drift_ratio(Fraction(1), 0) is None


@pytest.mark.parametrize(("dev_bps", "action"), [
    (299, "none"), (300, "none"), (301, "hedge"),  # inner bound 3%: inside (inclusive) → nothing
    (999, "hedge"), (1000, "hedge"), (1001, "halt"),  # outer bound 10%: beyond (strict) → halt
])
def test_band_policy(dev_bps: int, action: str) -> None:
    r = t.band(0, "WETH", Fraction(-dev_bps, 10_000), inner_bps=300, outer_bps=1000, halted_since=None,
               acknowledged=False, now=77)
    assert r.action == action
    assert r.fired is (action != "none")
    if action == "halt":
        assert r.since == 77


def test_band_halt_keeps_since_and_ack_turns_it_into_a_rebalance() -> None:
    r = t.band(0, "WETH", Fraction(2), inner_bps=300, outer_bps=1000, halted_since=50, acknowledged=False, now=77)
    assert (r.action, r.since) == ("halt", 50)
    r = t.band(0, "WETH", Fraction(2), inner_bps=300, outer_bps=1000, halted_since=50, acknowledged=True, now=77)
    assert r.action == "hedge"
    assert "acknowledged" in r.detail


def test_band_widths_from_volatility() -> None:
    rules = Rules(band_min_samples=4, band_min_inner_bps=10, band_min_outer_bps=20)
    # weights 90, 110, 90, 110 ppm: mean 100, σ 10 → σ_rel 10% → x = 2σ = 2000 bps, y = 4σ = 4000 bps
    assert t.band_widths([90, 110, 90, 110], rules) == (2000, 4000, Fraction(1, 10))
    # too little history → the configured minimum bands
    assert t.band_widths([90, 110], rules) == (10, 20, None)
    # flat weights → the minimum bands apply
    assert t.band_widths([100] * 5, rules)[:2] == (10, 20)


@pytest.mark.parametrize(("cost", "fired"), [(99, False), (100, False), (101, True)])
def test_cost_gate_defers_above_share(cost: int, fired: bool) -> None:
    r = t.cost_gate(0, Fraction(cost), Fraction(10_000), 100, urgent=False)
    assert r.fired is fired
    assert r.action == ("defer" if fired else "none")


def test_cost_gate_overridden_when_urgent() -> None:
    r = t.cost_gate(0, Fraction(10_000), Fraction(1), 100, urgent=True)
    assert r.fired is False
    assert "overridden" in r.detail


def test_rules_validation_names_the_rule() -> None:
    with pytest.raises(InputError) as info:
        Rules(hf_target_wad=10**18)
    assert info.value.field == "rules.hf_target_wad"
    with pytest.raises(InputError) as info:
        Rules(drift_bps=-1)
    assert info.value.field == "rules.drift_bps"
    with pytest.raises(InputError, match="outer multiplier"):
        Rules(band_inner_mult_bps=5, band_outer_mult_bps=5)


def test_show_handles_uint256_sized_values() -> None:
    big = Fraction(2**256 - 1) * 10_000  # e.g. a drift in bps from an extreme snapshot value
    assert t.show(big) == str((2**256 - 1) * 10_000)
    assert t.show(Fraction(1, 3)) == "0.3333"
    assert t.show(None) == "inf"
