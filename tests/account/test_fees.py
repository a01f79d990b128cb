"""The fee ledger within each vault, fed with each vault's own attributed cost.

Worked example (tests/net/test_net_worked.py: three vaults, V2 opposes the net in both instruments and is
attributed no GMX fee). At the marks (WETH $3000, USDC $1), in micro-USD, rounded down once per vault:
  V1: fee 7.537689 USDC + 0.020 WETH = 7.537689 + 60 = $67.537689; gas 185,840,707,964,602 wei × $3000/ETH
      = $0.557522123893806 → $68.095211123893806 → 68,095,211 µUSD
  V2: fee 0; gas 79,646,017,699,115 wei = $0.238938053097345 → 238,938 µUSD (its gas share only)
  V3: fee 1.507538 USDC + 0.004 WETH = $13.507538; gas 34,513,274,336,283 wei = $0.103539823008849
      → $13.611077823008849 → 13,611,077 µUSD
With no gas (gas price 0) V2's cost, and so every charge to V2's holders, is exactly 0.
Holders: V1 alice 300 shares, bob 100; V2 carol 7; V3 dave 1 and 2 shares nobody known holds (the vault).
  V1: alice 68,095,211 × 3/4 = 51,071,408.25, bob 17,023,802.75 → settle_all gives the leftover unit to
      the larger residue (bob, .75): alice 51,071,408, bob 17,023,803 (sum 68,095,211 ✓).
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.account import (
    VAULT_HOLDER,
    Ledger,
    apply_rebalance,
    attribute,
    check_invariant,
    holder_positions,
    ledger_from_json_dict,
    ledger_to_json_dict,
    pool_id,
    settle_all,
    statement,
    vault_costs,
)
from keeper.net import Execution
from tests.net.sim import execute_at_marks
from tests.net.test_net_worked import plan

ETH = 3000 * 10**30
POSITIONS = {1: {"alice": 300, "bob": 100}, 2: {"carol": 7}, 3: holder_positions(3, {"dave": 1})}


def worked(gas_price: int = 10**9):  # type: ignore[no-untyped-def]
    p = plan()
    return attribute(p, Execution(execute_at_marks(p.order, p.oracle), 300_000, gas_price), rebalance_id=7)


def test_each_vault_bears_its_own_attributed_cost() -> None:
    assert vault_costs(worked(), ETH) == {1: 68_095_211, 2: 238_938, 3: 13_611_077}


def test_the_vault_that_opposed_the_net_is_charged_nothing() -> None:
    costs = vault_costs(worked(gas_price=0), ETH)
    assert costs == {1: 67_537_689, 2: 0, 3: 13_507_538}
    ledger, charges = apply_rebalance(Ledger(), 7, costs, POSITIONS)
    for v in (1, 2, 3):
        ledger, _ = settle_all(ledger, pool_id(v))
    carol = ledger.pool(pool_id(2)).holder("carol")
    assert carol is not None and carol.charged == 0 and ledger.pool(pool_id(2)).total_cost == 0
    assert [c.cost for c in charges] == [67_537_689, 0, 13_507_538]


def test_worked_example_charges_after_settlement_equal_the_cost() -> None:
    ledger, charges = apply_rebalance(Ledger(), 7, vault_costs(worked(), ETH), POSITIONS)
    assert [c.positions for c in charges] == [
        (("alice", 300), ("bob", 100)), (("carol", 7),), (("dave", 1), (VAULT_HOLDER, 2))]
    assert all(c.settled == () for c in charges)  # nobody held anything before: nothing to settle
    v1 = statement(ledger.pool(pool_id(1)))
    assert v1 == {"alice": {"charged": 0, "owed": 51_071_408}, "bob": {"charged": 0, "owed": 17_023_803}}
    for v in (1, 2, 3):
        ledger, paid = settle_all(ledger, pool_id(v))
        pool = ledger.pool(pool_id(v))
        assert pool.total_charged == pool.total_cost == sum(paid.values())
    assert ledger.pool(pool_id(1)).holder("alice").charged == 51_071_408  # type: ignore[union-attr]


def test_a_position_change_settles_the_holder_and_a_newcomer_pays_only_what_follows() -> None:
    ledger, _ = apply_rebalance(Ledger(), 1, {0: 1000}, {0: {"alice": 100}})
    # bob deposits between rebalance 1 and 2; alice's position is unchanged and she is not settled yet
    ledger, charges = apply_rebalance(ledger, 2, {0: 600}, {0: {"alice": 100, "bob": 200}})
    assert charges[0].settled == ()
    # alice withdraws half before rebalance 3: she is settled for #1 and #2 at her old position
    ledger, charges = apply_rebalance(ledger, 3, {0: 300}, {0: {"alice": 50, "bob": 200}})
    assert dict(charges[0].settled) == {"alice": 1000 + 200}
    ledger, paid = settle_all(ledger, pool_id(0))
    assert paid == {"alice": 60, "bob": 400 + 240}  # bob: 2/3 of #2, 4/5 of #3; never #1
    assert ledger.pool(pool_id(0)).total_charged == 1900


def test_positions_fall_back_to_the_vault_itself() -> None:
    assert holder_positions(10, {"a": 4, "b": 0}) == {"a": 4, VAULT_HOLDER: 6}
    assert holder_positions(0, {}) == {VAULT_HOLDER: 1}  # no shares: the vault is its own single holder
    with pytest.raises(ValueError, match="hold 11 shares of 10"):
        holder_positions(10, {"a": 11})
    ledger, charges = apply_rebalance(Ledger(), 1, {4: 5}, {})
    assert charges[0].positions == ((VAULT_HOLDER, 1),)
    assert ledger.pool(pool_id(4)).total_cost == 5


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[dict[int, int], dict[int, dict[str, int]]]]:
    steps = []
    for _ in range(draw(st.integers(1, 8))):
        vaults = draw(st.lists(st.integers(0, 2), min_size=1, max_size=3, unique=True))
        costs = {v: draw(st.integers(0, 10**9)) for v in vaults}
        positions = {
            v: draw(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 10**20), max_size=4))
            for v in vaults
        }
        steps.append((costs, positions))
    return steps


@settings(max_examples=150, deadline=None)
@given(histories())
def test_ledger_conserves_each_vaults_cost_and_charges_only_holders_at_the_rebalance(
    steps: list[tuple[dict[int, int], dict[int, dict[str, int]]]],
) -> None:
    ledger = Ledger()
    exact: dict[tuple[int, str], Fraction] = {}  # the exact share each holder owes
    for n, (costs, positions) in enumerate(steps, start=1):
        ledger, _ = apply_rebalance(ledger, n, costs, positions)
        for v, cost in costs.items():
            held = {h: p for h, p in positions[v].items() if p > 0} or {VAULT_HOLDER: 1}
            total = sum(held.values())
            for h, p in held.items():
                exact[(v, h)] = exact.get((v, h), Fraction(0)) + Fraction(cost * p, total)
    ledger = ledger_from_json_dict(ledger_to_json_dict(ledger))  # survives the store round trip
    for pool in ledger.pools:
        check_invariant(pool)
        owed = statement(pool)
        assert sum(x["charged"] + x["owed"] for x in owed.values()) == pool.total_cost
        ledger, _ = settle_all(ledger, pool.pool_id)
    for pool in ledger.pools:
        v = int(pool.pool_id.split(":")[1])
        assert pool.total_charged == pool.total_cost == sum(c.get(v, 0) for c, _ in steps)
        for h in pool.holders:  # within one unit per rebalance of the exact share; nobody pays what it never held
            share = exact.get((v, h.holder_id), Fraction(0))
            assert abs(h.charged - share) <= len(steps)
            if share == 0:
                assert h.charged == 0
