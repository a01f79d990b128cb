"""Worked example: three vaults, two instruments, mixed signs; every number hand-computed below.

Marks: USDC $1 (6 dec), WETH $3000 (18 dec), GLP $1 (AUM 110M USD / 110M GLP); GMX fee 30 bps,
slippage 20 bps, maxSlippageBps 100 → a leg keeps (10_000 − 30 − 20) / 10_000 = 0.995.

Per-vault token flows F = debt − collateral − buffer (E = 1e18 WETH units, U = 1e6 USDC units):
  V1: collateral USDC +5000, borrow WETH +10 (and 0.001 WETH interest) → F = (−5000 U, +10 E)
  V2: collateral USDC −3000, repay  WETH −4                            → F = (+3000 U,  −4 E)
  V3: buffer USDC +1000,     borrow WETH +2                            → F = (−1000 U,  +2 E)
V2 opposes the net in BOTH instruments: it is crossed internally and pays no GMX fee.

WETH: mint side 12 E (V1 10, V3 2), redeem side 4 E (V2) → net mint 8 E.
  V2's 4 WETH crossed at the marks: 4 × 3000 = 12,000 GLP (ceil, exact here) → V2 glp −12,000.
  Leg: mint with 8 WETH, minimum out = 8 × 3000 × 0.995 = 23,880 GLP.
  Mint side shares 12,000 + 23,880 = 35,880 GLP pro rata 10:2 → V1 29,900, V3 5,980.
USDC: mint side 3000 U (V2), redeem side 6000 U (V1 5000, V3 1000) → net redeem 3000 U.
  V2's 3000 USDC crossed: floor(3000 GLP) = 3,000 GLP → V2 +3,000.
  Leg: GLP in = ceil(3000e18 / 0.995) = ceil(3015075376884422110552.76…) = 3015075376884422110553,
  minimum out 3000 U. Redeem side gives 3000e18 + 3015075376884422110553 = 6015075376884422110553
  pro rata 5:1: V1 5012562814070351758794.17 → 5012562814070351758794, V3 1002512562814070351758.83 →
  1002512562814070351758; 1 unit left → largest remainder (V3, .83) → 1002512562814070351759.
deltas.glp per asset (USDC, WETH), conserved per leg:
        V1 (−5012562814070351758794, +29,900e18), total 24887437185929648241206
        V2 (+3,000e18, −12,000e18),                total −9,000e18
        V3 (−1002512562814070351759, +5,980e18),   total 4977487437185929648241
        Σ USDC = −3015075376884422110553 (the redeem leg), Σ WETH = 23,880e18 (the mint leg) ✓
Cash = debt − collateral − F: V1 (0, 0), V2 (0, 0), V3 (1000 U buffer, 0).
Order: supply (2000 U, 0), borrow (0, 8 E), interest (0, 0.001 E).

Execution at the marks (GMX devnet formulas):
  WETH mint 8 E: fee = 8 E × 0.003 = 0.024 E; 7.976 WETH → 23,928 GLP; surplus 48 GLP.
  USDC redeem: 3015075376884422110553 GLP → 3015.075376 USDC; fee ceil = 9.045227; out 3006.030149;
  surplus 6.030149 USDC.
Fees: WETH 0.024 E split V1:V3 = 10:2 → V1 0.020 E, V3 0.004 E, V2 0.
      USDC 9,045,227 split V1:V3 = 5000:1000 → 7,537,689.17 / 1,507,537.83 → V1 7,537,689, V3 1,507,538
      (the leftover unit goes to the larger remainder, V3). V2 0.
Gas 300,000 × 1 gwei = 3e14 wei, pro rata to gross notional (collateral + debt moved + |F| at the marks):
  V1 5000 + 30,000 + 5000 + 30,000 = $70,000; V2 3000 + 12,000 + 3000 + 12,000 = $30,000;
  V3 0 + 6000 + 1000 + 6000 = $13,000 → 3e14 × 70/113 = 185,840,707,964,601.77, × 30/113 =
  79,646,017,699,115.04, × 13/113 = 34,513,274,336,283.19; floors sum to 3e14 − 1 → V1 (+1, .77).
Notional: netted legs 8 WETH + 3000 USDC = $27,000; separately Σ|F| = $57,000; 1 tx vs 3.
"""

from __future__ import annotations

import json

from keeper.account import attribute, record_from_json_dict, render_table
from keeper.net import (
    FLAG_CYCLE,
    Execution,
    GlpLeg,
    VaultChange,
    apply_order,
    check_conservation,
    compare_notional,
    net_changes,
    order_abi,
    surplus_credits,
)
from tests.net.sim import empty_book, execute_at_marks, oracle2

E, U = 10**18, 10**6
M = frozenset({0, 1})
CHANGES = [
    VaultChange(1, 0, M, 0, (5000 * U, 0), (0, 10 * E), (0, 10**15), 0),
    VaultChange(2, 0, M, 0, (-3000 * U, 0), (0, -4 * E), (0, 0), 0),
    VaultChange(3, 0, M, 0, (0, 0), (0, 2 * E), (0, 0), 1000 * U),
]


def plan():  # type: ignore[no-untyped-def]
    return net_changes(CHANGES, oracle2(), slippage_bps=20, max_slippage_bps=100, deadline=1_700_000_600,
                       flags=FLAG_CYCLE)


def test_order_numbers() -> None:
    order = plan().order
    assert order.glp == (
        GlpLeg(asset=0, glp=-3015075376884422110553, token_amount=3000 * U),
        GlpLeg(asset=1, glp=23_880 * E, token_amount=8 * E),
    )
    d1, d2, d3 = order.deltas
    assert (d1.vault, d1.glp, d1.cash, d1.collateral, d1.debt) == (
        1, (-5012562814070351758794, 29_900 * E), (0, 0), (5000 * U, 0), (0, 10 * E + 10**15))
    assert (d2.vault, d2.glp, d2.cash, d2.collateral, d2.debt) == (
        2, (3000 * E, -12_000 * E), (0, 0), (-3000 * U, 0), (0, -4 * E))
    assert (d3.vault, d3.glp, d3.cash, d3.collateral, d3.debt) == (
        3, (-1002512562814070351759, 5980 * E), (1000 * U, 0), (0, 0), (0, 2 * E))
    assert (d1.glp_total, d2.glp_total, d3.glp_total) == (
        24887437185929648241206, -9000 * E, 4977487437185929648241)
    assert (order.supply, order.borrow, order.interest) == ((2000 * U, 0), (0, 8 * E), (0, 10**15))
    check_conservation(order, unassigned_debt=(0, 10**15))


def test_crossing_report() -> None:
    usdc, weth = plan().crossings
    assert (usdc.mint_gross, usdc.redeem_gross, usdc.crossed_tokens, usdc.crossed_glp, usdc.net_tokens) == (
        3000 * U, 6000 * U, 3000 * U, 3000 * E, -3000 * U)
    assert (weth.mint_gross, weth.redeem_gross, weth.crossed_tokens, weth.crossed_glp, weth.net_tokens) == (
        12 * E, 4 * E, 4 * E, 12_000 * E, 8 * E)
    assert weth.token_price == 3000 * 10**30


def test_execution_fees_gas_and_the_vault_that_pays_nothing() -> None:
    p = plan()
    executed = execute_at_marks(p.order, p.oracle)
    assert [(e.glp, e.token_amount, e.fee_tokens) for e in executed] == [
        (3015075376884422110553, 3_006_030_149, 9_045_227),
        (23_928 * E, 8 * E, 24 * 10**15),
    ]
    rec = attribute(p, Execution(executed, gas_used=300_000, effective_gas_price=10**9), rebalance_id=7)
    fees = {v.vault_id: v.fee_tokens for v in rec.vaults}
    assert fees == {1: (7_537_689, 20 * 10**15), 2: (0, 0), 3: (1_507_538, 4 * 10**15)}
    gas = {v.vault_id: v.gas_wei for v in rec.vaults}
    assert gas == {1: 185_840_707_964_602, 2: 79_646_017_699_115, 3: 34_513_274_336_283}
    assert sum(gas.values()) == 3 * 10**14
    assert rec.fee_tokens == (9_045_227, 24 * 10**15)
    assert record_from_json_dict(json.loads(json.dumps(rec.to_json_dict()))) == rec
    table = render_table([rec], ["USDC", "WETH"], [6, 18])
    assert "7.537689" in table and "total" in table


def test_contract_surplus_crediting_per_leg() -> None:
    """Each leg's surplus goes only to the vaults that traded through it, weighted by deltas.glp[leg]:
    the 48 GLP WETH mint surplus to V1, V3 (29,900 : 5,980 = 5 : 1 → exactly 40 / 8 GLP), the 6.030149
    USDC redeem surplus to V1, V3 (|glp[USDC]| ≈ 5 : 1). V2, on the other side of both legs, gets nothing
    (with the old total-GLP weights it took the whole USDC surplus: a $6.03 leak)."""
    p = plan()
    executed = execute_at_marks(p.order, p.oracle)
    credits = surplus_credits(p.order, executed)
    # USDC floors: 6030149 × 5012562814070351758794 / 6015075376884422110553 = 5025124.17 → 5025124 (V1),
    # × 1002512562814070351759 / … = 1005024.83 → 1005024 (V3); the remainder 1 goes to the largest
    # weight (V1), not to the largest remainder (V3).
    assert credits == {1: (40 * E, (5_025_125, 0)), 2: (0, (0, 0)), 3: (8 * E, (1_005_024, 0))}
    books = tuple(empty_book(v, 0, 2) for v in (1, 2, 3))
    after = apply_order(books, p.order, executed)
    assert after[1].cash == books[1].cash and after[1].glp == books[1].glp - 9000 * E
    assert after[0].glp - books[0].glp == 24887437185929648241206 + 40 * E
    assert after[2].cash[0] - books[2].cash[0] == 1000 * U + 1_005_024
    rec = attribute(p, Execution(executed, 1, 1), 7)
    leak = {v.vault_id: v.surplus_leak_usd30 for v in rec.vaults}
    # the fair share is the contract's own per-leg rule over the order's per-leg GLP: nothing leaks
    assert leak == {1: 0, 2: 0, 3: 0}


def test_notional_and_tx_count() -> None:
    cmp = compare_notional(plan())
    assert (cmp.netted_usd30, cmp.separate_usd30, cmp.netted_txs, cmp.separate_txs) == (
        27_000 * 10**30, 57_000 * 10**30, 1, 3)


def test_abi_tuple_is_plain() -> None:
    abi = order_abi(plan().order)
    assert abi[0] == 1_700_000_600 and abi[1] == FLAG_CYCLE
    assert abi[2][1] == (1, 23_880 * E, 8 * E)
    assert abi[7][2] == (3, [-1002512562814070351759, 5980 * E], [1000 * U, 0], [0, 0], [0, 2 * E])
    assert json.loads(json.dumps(abi)) is not None
