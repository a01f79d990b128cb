"""Data of the netting engine: its input (`VaultChange`), the oracle marks, and its output (`Order`).

Owns the Python mirror of `VaultManager.rebalance`'s `Order` / `GlpLeg` / `VaultDelta` structs, the
ABI-ready tuple form of an Order (plain ints, tuples and lists: no web3 import), the oracle marks every
valuation uses, and the execution results of a rebalance (`ExecutedLeg`, `Execution`).
Must not import web3, read the clock or do I/O. Amounts are ints in on-chain units; values are exact
`Fraction`s of USD × 1e30 and are only rounded where a function says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from keeper.snapshot import Snapshot
from keeper.units import BPS, USD30

FLAG_HARVEST = 1
FLAG_CYCLE = 2
FLAG_PROFIT = 4
GLP_DECIMALS = 18


@dataclass(frozen=True)
class Oracle:
    """The marks netting, bounds and attribution value things at (the contract's bound-check marks).

    token_price[i]: USD × 1e30 per whole token i = Chainlink answer × 10^(30 − feed decimals).
    GLP mark: `glp_aum` / `glp_supply` (USD × 1e30 per GLP unit) with `glp_aum` = `getAum(false)`
    (= snapshot `aum_min`), exactly what `VaultManager` uses for `BoundTooLoose`; $1 per GLP while the
    supply is 0 (as GlpManager.getPrice). `fee_bps` is GMX's mint/burn fee.
    """

    token_price: tuple[int, ...]
    decimals: tuple[int, ...]
    glp_aum: int
    glp_supply: int
    fee_bps: int

    def __post_init__(self) -> None:
        if len(self.token_price) != len(self.decimals):
            raise ValueError("token_price and decimals differ in length")
        if any(p <= 0 for p in self.token_price):
            raise ValueError("token prices must be positive")
        if self.glp_supply > 0 and self.glp_aum <= 0:
            raise ValueError("GLP AUM must be positive while supply > 0")
        if not 0 <= self.fee_bps < BPS:
            raise ValueError("fee_bps out of range")

    @property
    def asset_count(self) -> int:
        return len(self.token_price)

    def glp_unit_price(self) -> Fraction:
        """USD × 1e30 per GLP unit (1e-18 GLP)."""
        if self.glp_supply == 0:
            return Fraction(USD30, 10**GLP_DECIMALS)
        return Fraction(self.glp_aum, self.glp_supply)

    def token_unit_price(self, asset: int) -> Fraction:
        """USD × 1e30 per smallest unit of token `asset`."""
        return Fraction(self.token_price[asset], 10 ** self.decimals[asset])

    def token_value(self, asset: int, amount: int) -> Fraction:
        return amount * self.token_unit_price(asset)

    def glp_value(self, glp: int) -> Fraction:
        return glp * self.glp_unit_price()

    def tokens_to_glp(self, asset: int, amount: int) -> Fraction:
        """GLP units worth `amount` of token `asset` at the marks (exact, unrounded)."""
        return self.token_value(asset, amount) / self.glp_unit_price()

    def glp_to_tokens(self, asset: int, glp: int) -> Fraction:
        return self.glp_value(glp) / self.token_unit_price(asset)


def oracle_from_snapshot(snap: Snapshot) -> Oracle:
    """Marks from a snapshot: Chainlink answers for tokens, `aum_min / supply` for GLP."""
    return Oracle(
        token_price=tuple(a.feed_answer * 10 ** (30 - a.feed_decimals) for a in snap.assets),
        decimals=tuple(a.decimals for a in snap.assets),
        glp_aum=snap.glp.aum_min,
        glp_supply=snap.glp.supply,
        fee_bps=snap.glp.mint_burn_fee_bps,
    )


@dataclass(frozen=True)
class VaultChange:
    """One vault's wanted position change (input of netting).

    Tokens freed per asset i: F[i] = debt[i] − collateral[i] − (buffer if i == denomination else 0);
    F > 0 buys GLP with token i, F < 0 sells GLP for token i. `glp` is informative only (the engine
    derives the exact GLP from the token flows). `interest` grows the debt book, no tokens move.
    """

    vault_id: int
    denomination: int
    mandate: frozenset[int]
    glp: int
    collateral: tuple[int, ...]
    debt: tuple[int, ...]
    interest: tuple[int, ...]
    buffer: int


@dataclass(frozen=True)
class GlpLeg:
    """`GlpLeg { uint8 asset; int256 glp; uint256 tokenAmount; }`.

    glp > 0: mint with exactly tokenAmount, at least glp out; glp < 0: redeem exactly −glp, at least
    tokenAmount out.
    """

    asset: int
    glp: int
    token_amount: int


@dataclass(frozen=True)
class VaultDelta:
    """`VaultDelta { uint256 vault; int256[] glp; int256[] cash; int256[] collateral; int256[] debt; }`.

    `glp[i]`: the vault's nominal GLP change through asset i's leg (its share of the crossing in i plus its
    share of i's leg minimum); the contract conserves it per asset (Σ_v glp[i] = leg i's glp) and credits
    leg i's surplus by it. The book's GLP moves by `glp_total` = Σ_i glp[i].
    """

    vault: int
    glp: tuple[int, ...]
    cash: tuple[int, ...]
    collateral: tuple[int, ...]
    debt: tuple[int, ...]

    @property
    def glp_total(self) -> int:
        return sum(self.glp)


@dataclass(frozen=True)
class Order:
    """`VaultManager.rebalance(Order)`; flags: 1 harvest first, 2 recurring cycle, 4 profit settlement."""

    deadline: int
    flags: int
    glp: tuple[GlpLeg, ...]
    supply: tuple[int, ...]
    borrow: tuple[int, ...]
    interest: tuple[int, ...]
    process_vaults: tuple[int, ...]
    deltas: tuple[VaultDelta, ...]

    def leg(self, asset: int) -> GlpLeg | None:
        for leg in self.glp:
            if leg.asset == asset:
                return leg
        return None

    def delta(self, vault: int) -> VaultDelta | None:
        for d in self.deltas:
            if d.vault == vault:
                return d
        return None


def order_abi(order: Order) -> tuple[Any, ...]:
    """The Order as web3 wants a struct argument: nested tuples (structs) and lists (arrays) of ints."""
    return (
        order.deadline,
        order.flags,
        [(leg.asset, leg.glp, leg.token_amount) for leg in order.glp],
        list(order.supply),
        list(order.borrow),
        list(order.interest),
        list(order.process_vaults),
        [(d.vault, list(d.glp), list(d.cash), list(d.collateral), list(d.debt)) for d in order.deltas],
    )


@dataclass(frozen=True)
class ExecutedLeg:
    """What one GlpLeg really did (from the `GlpTraded` event).

    glp: GLP minted (mint) or burned (redeem), >= 0; token_amount: tokens paid in (mint) or received
    (redeem), >= 0; fee_tokens: the GMX fee actually paid, in the leg's token.
    """

    asset: int
    glp: int
    token_amount: int
    fee_tokens: int


@dataclass(frozen=True)
class Execution:
    """Execution results of one rebalance transaction."""

    legs: tuple[ExecutedLeg, ...]
    gas_used: int
    effective_gas_price: int

    @property
    def gas_wei(self) -> int:
        return self.gas_used * self.effective_gas_price
