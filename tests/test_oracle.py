"""The oracle guard at its edges: heartbeat, non-positive prices, divergence, median."""

from __future__ import annotations

from dataclasses import replace

import pytest

from keeper.chain.oracle import OracleRules, check, check_asset, feed_price_usd30, median
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
