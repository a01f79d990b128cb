"""The oracle guard at its edges: heartbeat, non-positive prices, divergence, median; the priced snapshot
decide and netting see (each accepted asset at its median, exactly) and which refused assets block a plan."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.chain.oracle import OracleRules, blocking, check, check_asset, feed_price_usd30, median, priced
from keeper.net import oracle_from_snapshot
from tests.factories import asset, snapshot

RULES = OracleRules(heartbeat_seconds=3600, max_divergence_bps=100)
NOW = 1_700_000_000


def eth(**changes: int) -> object:
    return replace(asset("WETH", 18, 3000), feed_updated_at=NOW - 60, **changes)


def test_healthy_asset_uses_the_median() -> None:
    a = replace(eth(), gmx_min_price=2990 * 10**30, gmx_max_price=3010 * 10**30)  # type: ignore[type-var]
    v = check_asset(a, NOW, RULES)
    assert v.ok and v.price_usd30 == 3000 * 10**30 and v.reasons == ()


@pytest.mark.parametrize(("age", "ok"), [(3599, True), (3600, True), (3601, False)])
def test_heartbeat_edge(age: int, ok: bool) -> None:
    a = replace(eth(), feed_updated_at=NOW - age)  # type: ignore[type-var]
    v = check_asset(a, NOW, RULES)
    assert v.ok is ok
    assert ("stale" in v.reasons) is (not ok)


@pytest.mark.parametrize("answer", [0, -1])
def test_non_positive_feed_is_refused(answer: int) -> None:
    v = check_asset(replace(eth(), feed_answer=answer), NOW, RULES)  # type: ignore[type-var]
    assert not v.ok and "non_positive" in v.reasons and v.price_usd30 == 0


@pytest.mark.parametrize(("gmx_max", "ok"), [(3030, True), (3031, False)])
def test_divergence_edge_at_100_bps(gmx_max: int, ok: bool) -> None:
    a = replace(eth(), gmx_max_price=gmx_max * 10**30)  # type: ignore[type-var]
    v = check_asset(a, NOW, RULES)
    assert v.ok is ok, v


def test_check_covers_every_asset_and_median_even() -> None:
    verdicts = check(snapshot(), {"WETH": RULES})
    assert set(verdicts) == {"USDC", "WETH", "WBTC"}
    assert feed_price_usd30(asset("WBTC", 8, 60000)) == 60000 * 10**30
    assert median([1, 4, 2, 3]) == 2


USD30 = 10**30


def test_priced_snapshot_carries_the_median_not_the_chainlink_answer() -> None:
    base = snapshot()
    usdc, weth, wbtc = base.assets
    weth = replace(weth, gmx_min_price=3010 * USD30, gmx_max_price=3020 * USD30)  # sources 3000, 3010, 3020
    wbtc = replace(wbtc, feed_updated_at=NOW - 4000, gmx_min_price=59_000 * USD30)  # stale: refused
    snap = replace(base, assets=(usdc, weth, wbtc))
    verdicts = check(snap, {}, RULES)
    marked = priced(snap, verdicts)
    assert feed_price_usd30(marked.assets[1]) == 3010 * USD30 != feed_price_usd30(snap.assets[1])
    assert oracle_from_snapshot(marked).token_price == (1 * USD30, 3010 * USD30, 60_000 * USD30)
    assert not verdicts["WBTC"].ok and marked.assets[2] == wbtc  # refused: untouched (nothing trades on it)
    assert (marked.books, marked.glp, marked.manager, marked.memory) == (snap.books, snap.glp, snap.manager,
                                                                         snap.memory)


@settings(max_examples=300, deadline=None)
@given(
    answer=st.integers(1, 10**15),
    feed_decimals=st.integers(0, 18),
    spread=st.tuples(st.integers(-50, 50), st.integers(-50, 50)),
    extra=st.lists(st.integers(1, 10**40), max_size=1),
)
def test_median_conversion_is_exact(answer: int, feed_decimals: int, spread: tuple[int, int],
                                    extra: list[int]) -> None:
    a = replace(eth(), feed_answer=answer, feed_decimals=feed_decimals)  # type: ignore[type-var]
    feed = feed_price_usd30(a)
    a = replace(a, gmx_min_price=max(feed * (10_000 + spread[0]) // 10_000, 1),
                gmx_max_price=max(feed * (10_000 + spread[1]) // 10_000, 1))
    verdict = check_asset(a, NOW, OracleRules(3600, 10_000), extra)
    snap = replace(snapshot(), assets=(a,), books=())
    marked = priced(snap, {a.symbol: verdict}).assets[0]
    if verdict.ok:
        assert feed_price_usd30(marked) == verdict.price_usd30 == median([feed, a.gmx_min_price, a.gmx_max_price,
                                                                         *extra])
    else:
        assert marked == a


def test_any_refused_asset_blocks_glp_dependent_plans() -> None:
    # a stale stablecoin feed: GLP's price depends on every pool asset, so a plan minting GLP with WETH stops
    assert blocking({"USDC"}, {"WETH"}, glp_dependent=True) == {"USDC"}
    # a plan that neither trades GLP nor sizes hedges from it stops only on the assets it moves
    assert blocking({"USDC"}, {"WETH"}, glp_dependent=False) == set()
    assert blocking({"USDC", "WBTC"}, {"USDC", "WETH"}, glp_dependent=False) == {"USDC"}
    assert blocking(set(), {"WETH"}, glp_dependent=True) == set()
