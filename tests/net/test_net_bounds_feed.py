"""Bounds at the contract's own valuation while the oracle guard's median differs from the feed.

`sol_check_bounds` is a line-by-line port of `VaultManager._checkBounds` (contracts/VaultManager.sol): values
round down (`_usd`, `_glpUsd`), `required = _ceilDiv(given × (BPS − maxSlippageBps), BPS)`. It deliberately
shares no code with keeper.net, so the engine's orders are checked against the Solidity rule, not against
the model the engine itself uses.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.net import (
    FillShortOfBound,
    GlpLeg,
    GmxQuote,
    Oracle,
    Order,
    VaultChange,
    check_bounds,
    check_conservation,
    net_changes,
)
from keeper.net.errors import BoundTooLoose
from tests.net.sim import oracle3

BPS = 10_000
N = 3


def sol_check_bounds(order: Order, price: tuple[int, ...], decimals: tuple[int, ...], aum: int, supply: int, *,
                     max_slippage_bps: int) -> list[tuple[int, int, int]]:
    """Port of `_checkBounds`; returns the legs that revert `BoundTooLoose(asset, minimumUsd, requiredUsd)`."""

    def usd(asset: int, amount: int) -> int:
        return 0 if amount == 0 else amount * price[asset] // 10 ** decimals[asset]

    def glp_usd(amount: int) -> int:
        if amount == 0 or supply == 0:
            return 0
        return amount * aum // supply

    def ceil_div(a: int, b: int) -> int:
        return 0 if a == 0 else (a - 1) // b + 1

    failed = []
    for leg in order.glp:
        if leg.glp == 0 and leg.token_amount == 0:
            continue
        token_usd = usd(leg.asset, leg.token_amount)
        g = glp_usd(abs(leg.glp))
        given_, minimum = (token_usd, g) if leg.glp > 0 else (g, token_usd)
        required = ceil_div(given_ * (BPS - max_slippage_bps), BPS)
        if minimum < required:
            failed.append((leg.asset, minimum, required))
    return failed


def sol(order: Order, oracle: Oracle, max_slippage_bps: int) -> list[tuple[int, int, int]]:
    return sol_check_bounds(order, oracle.token_price, oracle.decimals, oracle.glp_aum, oracle.glp_supply,
                            max_slippage_bps=max_slippage_bps)


def at_median(feed: Oracle, asset: int, bps: int) -> Oracle:
    """The oracle guard's view: asset `asset` priced `bps` away from its feed (GLP marks unchanged)."""
    prices = list(feed.token_price)
    prices[asset] = prices[asset] * (BPS + bps) // BPS
    return replace(feed, token_price=tuple(prices))


def quote_at(oracle: Oracle, bps: int = 0) -> GmxQuote:
    """GMX prices `bps` away from the oracle's marks on both sides; AUM both ways = the oracle's GLP mark."""
    prices = tuple(p * (BPS + bps) // BPS for p in oracle.token_price)
    return GmxQuote(prices, prices, oracle.decimals, oracle.glp_aum, oracle.glp_aum, oracle.glp_supply,
                    oracle.fee_bps)


def mint_weth(amount: int) -> VaultChange:
    """Vault 1 (WETH denominated) puts `amount` WETH into GLP (its buffer shrinks by it)."""
    return VaultChange(1, 1, frozenset({0, 1}), 0, (0, 0, 0), (0, 0, 0), (0, 0, 0), -amount)


def redeem_weth(amount: int) -> VaultChange:
    """Vault 2 (WETH denominated) takes `amount` WETH out of GLP into its buffer."""
    return VaultChange(2, 1, frozenset({0, 1}), 0, (0, 0, 0), (0, 0, 0), (0, 0, 0), amount)


@pytest.mark.parametrize(("change", "divergence"), [(mint_weth(40 * 10**18), -40), (redeem_weth(40 * 10**18), 40)])
def test_median_40_bps_off_the_feed_old_bounds_revert_new_bounds_pass(change: VaultChange, divergence: int) -> None:
    """fee 30 + slippage 60 ≤ maxSlippageBps 100 leaves 10 bps: a median 40 bps on the wrong side of the feed
    made the order `BoundTooLoose` at the contract (the demo's refusals); at the feed it passes the port."""
    feed = oracle3(fee_bps=30)
    median = at_median(feed, 1, divergence)
    old = net_changes([change], median, slippage_bps=60, max_slippage_bps=100, deadline=1)  # the old daemon
    (asset, minimum, required), = sol(old.order, feed, 100)
    assert asset == 1 and minimum < required and (required - minimum) * BPS > 25 * required  # ~30 bps short
    new = net_changes([change], feed, slippage_bps=60, max_slippage_bps=100, deadline=1)
    assert sol(new.order, feed, 100) == []
    check_conservation(new.order, (0, 0, 0))


@st.composite
def flows(draw: st.DrawFn) -> list[VaultChange]:
    out = []
    for vid in draw(st.lists(st.integers(0, 20), min_size=1, max_size=5, unique=True)):
        denom = draw(st.integers(0, N - 1))
        coll = tuple(draw(st.integers(-10**20, 10**20)) if i != denom else 0 for i in range(N))
        debt = tuple(draw(st.integers(-10**20, 10**20)) if i != denom else 0 for i in range(N))
        buffer = draw(st.integers(-10**20, 10**20))
        out.append(VaultChange(vid, denom, frozenset(range(N)), 0, coll, debt, (0,) * N, buffer))
    return out


@settings(max_examples=300, deadline=None)
@given(
    changes=flows(),
    fee=st.integers(0, 80),
    slip=st.integers(0, 80),
    headroom=st.integers(0, 50),
    aum=st.integers(10**36, 10**39),
    supply=st.integers(10**24, 10**27),
)
def test_bounds_at_the_feed_pass_the_solidity_rule_exactly(
    changes: list[VaultChange], *, fee: int, slip: int, headroom: int, aum: int, supply: int
) -> None:
    """Netting at the feeds (never at the median) gives bounds `_checkBounds` accepts — also with zero
    headroom (fee + slippage == maxSlippageBps), where only the integer rounding decides."""
    feed = replace(oracle3(fee), glp_aum=aum, glp_supply=supply)
    max_slip = fee + slip + headroom
    try:
        plan = net_changes(changes, feed, slippage_bps=slip, max_slippage_bps=max_slip, deadline=1)
    except BoundTooLoose:
        pytest.fail("by construction the bounds pass at the marks they were sized at")
    except Exception as exc:  # dust legs (below one GLP unit) are refused by the engine, never sent
        assert "below one GLP unit" in str(exc)
        return
    assert sol(plan.order, feed, max_slip) == []
    check_bounds(plan.order, feed, max_slip)  # the keeper's model agrees with the port


def test_keeper_model_rejects_what_the_solidity_rule_rejects_at_the_rounding_edge() -> None:
    """A mint leg exactly one GLP unit below the smallest valid minimum: the port and the model both refuse."""
    feed = oracle3(fee_bps=30)
    amount = 12_345_678_901_234_567
    given_ = amount * feed.token_price[1] // 10**18
    required = -(-given_ * (BPS - 100) // BPS)
    smallest = -(-required * feed.glp_supply // feed.glp_aum)
    ok = Order(1, 0, (GlpLeg(1, smallest, amount),), (0,) * N, (0,) * N, (0,) * N, (), ())
    bad = replace(ok, glp=(GlpLeg(1, smallest - 1, amount),))
    assert sol(ok, feed, 100) == [] and sol(bad, feed, 100) != []
    check_bounds(ok, feed, 100)
    with pytest.raises(BoundTooLoose):
        check_bounds(bad, feed, 100)


def test_gmx_fill_below_the_minimum_is_refused_before_sending() -> None:
    """GMX quoting WETH 80 bps under the feed: the mint's expected GLP misses its minimum (and even the
    contract's required one), so sending it would revert `FillOutsideBound`."""
    feed = oracle3(fee_bps=30)
    change = mint_weth(40 * 10**18)
    ok = net_changes([change], feed, slippage_bps=60, max_slippage_bps=100, deadline=1, gmx=quote_at(feed, -40))
    (leg,) = ok.order.glp
    assert quote_at(feed, -40).expected(leg) >= leg.glp  # 40 bps under the feed still fills
    with pytest.raises(FillShortOfBound) as e:
        net_changes([change], feed, slippage_bps=60, max_slippage_bps=100, deadline=1, gmx=quote_at(feed, -80))
    assert e.value.asset == 1 and e.value.expected < e.value.minimum
    # redeem: GMX pays at its max price; 80 bps above the feed → fewer tokens than the minimum out
    with pytest.raises(FillShortOfBound):
        net_changes([redeem_weth(40 * 10**18)], feed, slippage_bps=60, max_slippage_bps=100, deadline=1,
                    gmx=quote_at(feed, 80))


@settings(max_examples=200, deadline=None)
@given(changes=flows(), fee=st.integers(0, 60), slip=st.integers(1, 60))
def test_gmx_at_the_feed_never_refuses(changes: list[VaultChange], fee: int, slip: int) -> None:
    """No false refusals: with GMX priced at the feed, every leg's expected fill reaches its minimum unless the
    slippage room is below GMX's rounding (under a cent: such a leg would revert on chain)."""
    feed = oracle3(fee)
    try:
        net_changes(changes, feed, slippage_bps=slip, max_slippage_bps=fee + slip, deadline=1, gmx=quote_at(feed))
    except FillShortOfBound as e:  # only dust: GMX's roundings (a few units) exceed the slippage room
        plan = net_changes(changes, feed, slippage_bps=slip, max_slippage_bps=fee + slip, deadline=1)
        leg = plan.order.leg(e.asset)
        assert leg is not None and feed.token_value(e.asset, leg.token_amount) * slip < 10**28 * BPS, str(e)
    except Exception as exc:
        assert "below one GLP unit" in str(exc)

