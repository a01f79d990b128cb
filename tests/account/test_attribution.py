"""Attribution edge cases: pure crossing (no leg, no fee), interest-only vaults, records' JSON checks."""

from __future__ import annotations

import json

import pytest

from keeper.account import attribute, record_from_json_dict, render_table
from keeper.net import Execution, VaultChange, net_changes
from tests.net.sim import oracle2

E = 10**18
M = frozenset({0, 1})


def test_pure_cross_pays_no_fee_and_splits_gas_by_notional() -> None:
    # V1 borrows 3 WETH into GLP, V2 repays 3 WETH out of GLP: fully crossed, no GMX leg at all.
    a = VaultChange(1, 0, M, 0, (0, 0), (0, 3 * E), (0, 0), 0)
    b = VaultChange(2, 0, M, 0, (0, 0), (0, -3 * E), (0, 0), 0)
    plan = net_changes([a, b], oracle2(), slippage_bps=10, max_slippage_bps=100, deadline=1)
    assert plan.order.glp == ()
    assert plan.order.deltas[0].glp == (0, 9000 * E) and plan.order.deltas[1].glp == (0, -9000 * E)
    rec = attribute(plan, Execution((), 100_001, 3), rebalance_id=2)
    assert [v.fee_tokens for v in rec.vaults] == [(0, 0), (0, 0)]
    assert [v.gas_wei for v in rec.vaults] == [150_002, 150_001]  # equal notional: tie → lowest id


def test_interest_only_vault_gets_no_gas_share_unless_all_are_zero() -> None:
    a = VaultChange(1, 0, M, 0, (0, 0), (0, 0), (0, 5), 0)
    plan = net_changes([a], oracle2(), slippage_bps=10, max_slippage_bps=100, deadline=1)
    rec = attribute(plan, Execution((), 10, 7), rebalance_id=3)
    assert rec.vaults[0].gas_wei == 70  # every notional is 0 → equal weights


def test_record_json_rejects_broken_sums() -> None:
    a = VaultChange(1, 0, M, 0, (0, 0), (0, E), (0, 0), 0)
    plan = net_changes([a], oracle2(), slippage_bps=10, max_slippage_bps=100, deadline=1)
    leg = plan.order.glp[0]
    from keeper.net import ExecutedLeg

    rec = attribute(plan, Execution((ExecutedLeg(1, leg.glp + 5, E, 3 * 10**15),), 21_000, 10**9), 4)
    data = json.loads(json.dumps(rec.to_json_dict()))
    assert record_from_json_dict(data) == rec
    data["vaults"][0]["gas_wei"] += 1
    with pytest.raises(ValueError, match="gas"):
        record_from_json_dict(data)
    assert render_table([]) == "no rebalance costs recorded"
    assert "WETH" in render_table([rec], ["USDC", "WETH"], [6, 18])
