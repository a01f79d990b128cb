"""The market simulator: seeded GBM paths with shocks (pure), and applying a step to the devnet."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from keeper.devnet.market import Market, Script, Shock, gbm_paths, oi_swing

START = {"USDC": Decimal(1), "WETH": Decimal(3000), "WBTC": Decimal(60000)}


def test_paths_are_seeded_and_shocks_apply_exactly() -> None:
    script = Script(seed=1, shocks=(Shock(5, "WETH", Decimal("0.7")),))
    calm = Script(seed=1)
    a, b = gbm_paths(script, START, 10), gbm_paths(script, START, 10)
    assert a == b and len(a) == 11
    assert a[-1]["USDC"] == 1  # no volatility configured for the stable
    base = gbm_paths(calm, START, 10)
    assert a[4] == base[4]
    assert a[5]["WETH"] == (base[5]["WETH"] * Decimal("0.7")).quantize(Decimal("0.00000001"))
    assert all(isinstance(p, Decimal) for step in a for p in step.values())


def test_oi_swing_is_a_bounded_triangle() -> None:
    values = [oi_swing(s, 8, Decimal(100), Decimal("0.5")) for s in range(16)]
    assert min(values) == 50 and max(values) == 150 and values[0] == 50 and values[4] == 150


@pytest.mark.anvil
def test_market_moves_prices_time_and_users(w3: Any, deployment: Any, c: Any, chain: None) -> None:
    market = Market(w3, deployment)
    before = w3.eth.get_block("latest")["timestamp"]
    market.set_prices({"WETH": Decimal("2850.5")})
    assert c("feed:WETH").functions.latestRoundData().call()[1] == 285_050_000_000
    market.advance(7200)
    assert w3.eth.get_block("latest")["timestamp"] >= before + 7200
    user = deployment.users[0]
    shares = market.shares(user, 0)
    market.deposit(user, 0, 1_000 * 10**6)
    assert market.shares(user, 0) > shares
