"""Exposure model: oracle marks, trader net OI, exposure per GLP unit, and a vault's equity, exposure and
health factor at the marks. Exact `Fraction` arithmetic; nothing here rounds.

Owns the valuation every other decision module uses. Must not import web3, read the clock, do I/O or
use floats.

Units inside: prices in USD × 1e30 per *smallest unit* of a token (per GLP unit for GLP), exposures in
token smallest units per GLP unit, equity in USD × 1e30.
* token mark p_i = Chainlink answer × 10^(30 − feed decimals) / 10^decimals (the `VaultManager.priceOf` mark);
* GLP mark P = aum_min / supply (`getAum(false)`, the contract's equity and bound mark); $1 while supply is 0;
* OI_a = reserved_a − globalShortSize_a × 10^dec_a / globalShortAveragePrice_a (tokens; 0 short part if avg = 0);
* volatile a: e_a = (pool_a − h·OI_a) / supply;  stables: the USD residual P − Σ_volatile e_a·p_a, split over
  the stables pro rata to their pool value (all to the first stable if none has a pool), in tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from keeper.snapshot import Asset, Book, Snapshot
from keeper.units import BPS, USD30, WAD

GLP_DECIMALS = 18


@dataclass(frozen=True)
class Marks:
    """Oracle marks of one snapshot. `usd30[i]`: USD × 1e30 per whole token (what memory stores)."""

    usd30: tuple[int, ...]
    price: tuple[Fraction, ...]  # USD × 1e30 per smallest unit
    glp_price: Fraction  # USD × 1e30 per GLP unit
    symbols: tuple[str, ...]
    decimals: tuple[int, ...]

    def value(self, asset: int, amount: int | Fraction) -> Fraction:
        return amount * self.price[asset]


def feed_usd30(asset: Asset) -> int:
    """One whole token in USD × 1e30 from its Chainlink answer (exact for feed decimals ≤ 30)."""
    return asset.feed_answer * int(10 ** (30 - asset.feed_decimals))


def marks(snap: Snapshot) -> Marks:
    usd = tuple(feed_usd30(a) for a in snap.assets)
    price = tuple(Fraction(u, 10**a.decimals) for u, a in zip(usd, snap.assets, strict=True))
    if snap.glp.supply == 0:
        glp_price = Fraction(USD30, 10**GLP_DECIMALS)
    else:
        glp_price = Fraction(snap.glp.aum_min, snap.glp.supply)
    return Marks(usd, price, glp_price, tuple(a.symbol for a in snap.assets), tuple(a.decimals for a in snap.assets))


def net_oi(asset: Asset) -> Fraction:
    """Trader net open interest in token units (positive: traders net long)."""
    short = Fraction(0)
    if asset.global_short_average_price > 0:
        short = Fraction(asset.global_short_size * 10**asset.decimals, asset.global_short_average_price)
    return asset.reserved_amount - short


def exposure_per_glp(snap: Snapshot, m: Marks, trader_oi_hedge_bps: int,
                     oi: Sequence[Fraction | int | None] | None = None) -> tuple[Fraction, ...]:
    """e_i for every asset (token units per GLP unit); Σ e_i·p_i = P exactly.

    `oi[i]` replaces the trader net OI of asset i (the OI applied at the last rebalance, for a fit that must
    not follow the OI seen now); None or a missing `oi` uses `net_oi` of the snapshot."""
    n = len(snap.assets)
    e = [Fraction(0)] * n
    supply = snap.glp.supply
    if supply == 0:
        volatile_usd = Fraction(0)
    else:
        h = Fraction(trader_oi_hedge_bps, BPS)
        for i, a in enumerate(snap.assets):
            if not a.is_stable:
                given = None if oi is None else oi[i]
                e[i] = (a.pool_amount - h * (net_oi(a) if given is None else given)) / supply
        volatile_usd = sum((e[i] * m.price[i] for i in range(n)), Fraction(0))
    residual = m.glp_price - volatile_usd
    stables = [i for i, a in enumerate(snap.assets) if a.is_stable]
    if stables:
        pool_usd = [snap.assets[i].pool_amount * m.price[i] for i in stables]
        total = sum(pool_usd, Fraction(0))
        for k, i in enumerate(stables):
            share = pool_usd[k] / total if total > 0 else Fraction(1 if k == 0 else 0)
            e[i] = residual * share / m.price[i]
    return tuple(e)


def book_equity(book: Book, m: Marks, extra_debt: Sequence[int] | None = None) -> Fraction:
    """Equity at the marks without pending deposits: GLP + cash + collateral − debt (− extra_debt)."""
    total = book.glp * m.glp_price
    for i in range(len(m.price)):
        owed = book.debt[i] + (extra_debt[i] if extra_debt is not None else 0)
        total += (book.cash[i] + book.collateral[i] - owed) * m.price[i]
    return total


def holdings_exposure(
    glp: int | Fraction,
    cash: Sequence[int],
    collateral: Sequence[int],
    debt: Sequence[int],
    e: Sequence[Fraction],
) -> tuple[Fraction, ...]:
    """Net exposure per asset in token units: glp·e_i + cash_i + collateral_i − debt_i."""
    return tuple(glp * e[i] + cash[i] + collateral[i] - debt[i] for i in range(len(e)))


def health_factor(
    collateral: Sequence[int], debt: Sequence[int], snap: Snapshot, m: Marks
) -> Fraction | None:
    """Σ collateral·p·LT / Σ debt·p (exact, as a number, not × 1e18); None when there is no debt."""
    debt_usd = sum((debt[i] * m.price[i] for i in range(len(debt))), Fraction(0))
    if debt_usd == 0:
        return None
    coll = sum(
        (collateral[i] * m.price[i] * snap.assets[i].liquidation_threshold_bps for i in range(len(collateral))),
        Fraction(0),
    )
    return coll / BPS / debt_usd


def wad(value: Fraction) -> Fraction:
    """A plain ratio as × 1e18 (for comparing with on-chain health factors)."""
    return value * WAD
