"""Test helpers: a GMX-like execution at the oracle marks and the value change of a book at the marks."""

from __future__ import annotations

import math
from fractions import Fraction

from keeper.net import ExecutedLeg, Oracle, Order
from keeper.snapshot import Book

BPS = 10_000
USD30 = 10**30


def oracle2(fee_bps: int = 30) -> Oracle:
    """USDC ($1, 6 dec), WETH ($3000, 18 dec); GLP exactly $1 (AUM 110M, supply 110M GLP)."""
    return Oracle(
        token_price=(1 * USD30, 3000 * USD30),
        decimals=(6, 18),
        glp_aum=110_000_000 * USD30,
        glp_supply=110_000_000 * 10**18,
        fee_bps=fee_bps,
    )


def oracle3(fee_bps: int = 30) -> Oracle:
    """oracle2 plus WBTC ($60000, 8 dec); GLP at $1.2345 (an awkward mark on purpose)."""
    return Oracle(
        token_price=(1 * USD30, 3000 * USD30, 60_000 * USD30),
        decimals=(6, 18, 8),
        glp_aum=135_795_000 * USD30,
        glp_supply=110_000_000 * 10**18,
        fee_bps=fee_bps,
    )


def execute_at_marks(order: Order, oracle: Oracle, bonus_bps: int = 0) -> tuple[ExecutedLeg, ...]:
    """GMX devnet formulas (flat fee, fee rounds up) with prices equal to the marks; `bonus_bps` makes the
    market pay that much more than the marks (still >= the minimum)."""
    out = []
    f = oracle.fee_bps
    for leg in order.glp:
        if leg.glp > 0:
            after = leg.token_amount * (BPS - f) // BPS
            glp = math.floor(oracle.tokens_to_glp(leg.asset, after) * Fraction(BPS + bonus_bps, BPS))
            out.append(ExecutedLeg(leg.asset, glp, leg.token_amount, leg.token_amount - after))
        else:
            redemption = math.floor(oracle.glp_to_tokens(leg.asset, -leg.glp) * Fraction(BPS + bonus_bps, BPS))
            got = redemption * (BPS - f) // BPS
            out.append(ExecutedLeg(leg.asset, -leg.glp, got, redemption - got))
    return tuple(out)


def value_change(before: Book, after: Book, oracle: Oracle, interest: tuple[int, ...]) -> Fraction:
    """USD×1e30 at the marks of (after − before), debt counted without the attributed interest (interest is
    a loss of the period, not of the rebalance)."""
    v = oracle.glp_value(after.glp - before.glp)
    for i in range(oracle.asset_count):
        moved_debt = after.debt[i] - before.debt[i] - interest[i]
        v += oracle.token_value(i, after.cash[i] - before.cash[i] + after.collateral[i] - before.collateral[i])
        v -= oracle.token_value(i, moved_debt)
    return v


def empty_book(vault_id: int, denomination: int, n: int, glp: int = 10**30, cash: int = 10**30) -> Book:
    """A book rich enough that no delta makes it negative."""
    big = (cash,) * n
    return Book(vault_id=vault_id, denomination=denomination, glp=glp, cash=big, collateral=big, debt=big,
                pending_deposits=0, pending_withdrawal_shares=0, total_shares=0, equity_usd=0)
