"""The GMX fill a GLP leg should get, and whether it reaches the leg's minimum. Pure (no web3, no clock, no I/O).

Owns the integer model of GMX's `GlpManager.addLiquidityForAccount` / `removeLiquidityForAccount` (the
devnet contracts and GMX v1 share it): a mint values the tokens at the GMX *min* price after the flat
mint/burn fee and prices GLP at `getAum(true)`; a redeem prices GLP at `getAum(false)` and pays tokens at
the GMX *max* price less the fee. Every step rounds down, as the Solidity does.

The order's minima are sized at the contract's marks (its feeds, `VaultManager._checkBounds`), but GMX fills
at its own prices; when those sit far enough below the feeds, the expected fill misses the minimum and the
rebalance would revert on chain with `FillOutsideBound`. `check_expected_fills` refuses such an order before
it is sent. Each leg is valued against the snapshot's pool state: the legs of one order move AUM and supply
a little for the next leg (by about the fee on the leg's share of the pool), which the check ignores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from keeper.net.errors import NettingError
from keeper.net.model import GlpLeg, Order
from keeper.snapshot import Snapshot
from keeper.units import BPS

USDG_DECIMALS = 18
PRICE_PRECISION = 10**30


class FillShortOfBound(NettingError):
    """The expected GMX fill of a leg is below its minimum: the transaction would revert `FillOutsideBound`."""

    def __init__(self, asset: int, expected: int, minimum: int, required: int | None = None) -> None:
        extra = "" if required is None else f", the contract requires a minimum worth {required} USD×1e30"
        super().__init__(
            f"leg in asset {asset}: GMX's expected fill {expected} is below the leg's minimum {minimum}{extra}"
        )
        self.asset = asset
        self.expected = expected
        self.minimum = minimum


@dataclass(frozen=True)
class GmxQuote:
    """GMX's side of a fill: its min/max price per asset (USD × 1e30 per whole token), token decimals, AUM
    both ways, GLP supply and the flat mint/burn fee."""

    min_price: tuple[int, ...]
    max_price: tuple[int, ...]
    decimals: tuple[int, ...]
    aum_max: int
    aum_min: int
    supply: int
    fee_bps: int

    def mint_out(self, asset: int, token_amount: int) -> int:
        """GLP out of a mint with exactly `token_amount` of `asset`."""
        after_fee = token_amount * (BPS - self.fee_bps) // BPS
        scale: int = 10 ** (self.decimals[asset] + 12)
        usdg = after_fee * self.min_price[asset] // scale
        aum_usdg = self.aum_max * 10**USDG_DECIMALS // PRICE_PRECISION
        out: int = usdg if self.supply == 0 or aum_usdg == 0 else usdg * self.supply // aum_usdg
        return out

    def redeem_out(self, asset: int, glp: int) -> int:
        """Tokens of `asset` out of redeeming exactly `glp` GLP units."""
        if self.supply == 0 or self.max_price[asset] == 0:
            return 0
        aum_usdg = self.aum_min * 10**USDG_DECIMALS // PRICE_PRECISION
        usdg = glp * aum_usdg // self.supply
        scale: int = 10 ** (self.decimals[asset] + 12)
        redemption = usdg * scale // self.max_price[asset]
        out: int = redemption * (BPS - self.fee_bps) // BPS
        return out

    def expected(self, leg: GlpLeg) -> int:
        """What the leg should receive: GLP for a mint, tokens for a redeem (compare with its minimum)."""
        return self.mint_out(leg.asset, leg.token_amount) if leg.glp > 0 else self.redeem_out(leg.asset, -leg.glp)


def gmx_quote(snap: Snapshot) -> GmxQuote:
    return GmxQuote(
        min_price=tuple(a.gmx_min_price for a in snap.assets),
        max_price=tuple(a.gmx_max_price for a in snap.assets),
        decimals=tuple(a.decimals for a in snap.assets),
        aum_max=snap.glp.aum_max,
        aum_min=snap.glp.aum_min,
        supply=snap.glp.supply,
        fee_bps=snap.glp.mint_burn_fee_bps,
    )


def leg_minimum(leg: GlpLeg) -> int:
    return leg.glp if leg.glp > 0 else leg.token_amount


def expected_fills(order: Order, quote: GmxQuote) -> dict[int, int]:
    """Asset → the expected fill of its leg (GLP for a mint, tokens for a redeem)."""
    return {leg.asset: quote.expected(leg) for leg in order.glp}


def check_expected_fills(order: Order, quote: GmxQuote, required: Sequence[int] | None = None) -> None:
    """Raise `FillShortOfBound` for the first leg whose expected GMX fill is below its minimum."""
    for k, leg in enumerate(order.glp):
        expected = quote.expected(leg)
        if expected < leg_minimum(leg):
            raise FillShortOfBound(leg.asset, expected, leg_minimum(leg), None if required is None else required[k])
