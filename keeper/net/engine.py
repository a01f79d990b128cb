"""The netting engine: many vaults' position changes → one `Order` that the contract accepts by construction.

Owns: turning `VaultChange`s into per-asset token flows, crossing opposite flows in the same token
internally at the oracle marks (no fee), sizing at most one GMX leg per asset for the net, splitting
GLP and tokens back to the vaults with exact integer rules, and the benchmark comparison against
executing every vault on its own. Must not import web3, read the clock, do I/O or use floats.

Rounding (every direction favours the pool of vaults over the market, and never lets a book need more
than the order provides):
* mint leg minimum out  = floor(tokens_to_glp(net) × (10_000 − fee − slippage) / 10_000);
* redeem leg GLP in     = ceil(tokens_to_glp(need) × 10_000 / (10_000 − fee − slippage)), minimum out = need;
* crossing, net mint:   each redeem-side vault gives ceil(tokens_to_glp(its tokens)) GLP;
* crossing, net redeem: each mint-side vault receives floor(tokens_to_glp(its tokens)) GLP;
* the majority side shares (crossed GLP + leg GLP) pro rata to its gross token flows, largest remainder,
  ties to the lowest vault id (`alloc.split_largest_remainder`).
See docs/netting.md for the algorithm and the conservation proof.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from keeper.net.alloc import split_largest_remainder
from keeper.net.contract import check_bounds, check_funding, leg_bound, max_redeem_glp, min_mint_glp
from keeper.net.errors import BoundTooLoose, MandateViolation, NettingError
from keeper.net.fill import GmxQuote, check_expected_fills
from keeper.net.model import GlpLeg, Oracle, Order, VaultChange, VaultDelta
from keeper.snapshot import Book
from keeper.units import BPS


@dataclass(frozen=True)
class VaultFlow:
    """Per vault: token flow per asset (F > 0 into GLP, F < 0 out of GLP), the stray cash swept into
    GLP (included in `tokens`), and the nominal GLP change per asset (= the delta's glp vector)."""

    vault_id: int
    tokens: tuple[int, ...]
    swept: tuple[int, ...]
    glp: tuple[int, ...]


@dataclass(frozen=True)
class Crossing:
    """What was crossed internally in one asset and at which marks.

    mint_gross / redeem_gross: Σ of positive / |negative| vault flows; crossed_tokens = min of both;
    crossed_glp: GLP handed from the minority side to the majority side (or the other way for a net
    redeem) at token_price (USD×1e30 per whole token) and GLP mark glp_aum / glp_supply.
    """

    asset: int
    mint_gross: int
    redeem_gross: int
    crossed_tokens: int
    crossed_glp: int
    net_tokens: int
    token_price: int
    glp_aum: int
    glp_supply: int


@dataclass(frozen=True)
class NetPlan:
    """The netted order plus everything needed to attribute and explain it."""

    order: Order
    flows: tuple[VaultFlow, ...]
    crossings: tuple[Crossing, ...]
    oracle: Oracle
    slippage_bps: int
    max_slippage_bps: int

    def flow(self, vault_id: int) -> VaultFlow:
        for f in self.flows:
            if f.vault_id == vault_id:
                return f
        raise KeyError(vault_id)


@dataclass(frozen=True)
class NotionalComparison:
    """GLP-trade notional (USD × 1e30 at the marks, token side, rounded down) and transaction counts."""

    netted_usd30: int
    separate_usd30: int
    netted_txs: int
    separate_txs: int


def _check_change(c: VaultChange, n: int) -> None:
    for name in ("collateral", "debt", "interest"):
        if len(getattr(c, name)) != n:
            raise NettingError(f"vault {c.vault_id}: {name} has {len(getattr(c, name))} entries, expected {n}")
    if not 0 <= c.denomination < n:
        raise NettingError(f"vault {c.vault_id}: denomination {c.denomination} out of range")
    if c.denomination not in c.mandate:
        raise MandateViolation(f"vault {c.vault_id}: denomination {c.denomination} is not in its mandate")
    if any(x < 0 for x in c.interest):
        raise NettingError(f"vault {c.vault_id}: interest must be >= 0")
    for i in range(n):
        if i not in c.mandate and (c.collateral[i] or c.debt[i] or c.interest[i]):
            raise MandateViolation(f"vault {c.vault_id}: change in asset {i} outside its mandate")


def books_cash(books: Sequence[Book], n_assets: int) -> tuple[int, ...]:
    """Σ of the books' cash per asset: a lower bound of the manager's balances, for `net_changes(held=...)`."""
    return tuple(sum(b.cash[i] for b in books) for i in range(n_assets))


def net_changes(
    changes: Sequence[VaultChange],
    oracle: Oracle,
    *,
    slippage_bps: int,
    max_slippage_bps: int,
    deadline: int,
    flags: int = 0,
    process_vaults: Sequence[int] = (),
    books: Mapping[int, Book] | None = None,
    sweep_stray: bool = False,
    gmx: GmxQuote | None = None,
    held: Sequence[int] | None = None,
) -> NetPlan:
    """Net `changes` into one Order. Raises NettingError (MandateViolation, BoundTooLoose) instead of
    building an order the contract would reject.

    `oracle` must be the contract's own marks (its Chainlink feeds and getAum(false)/supply,
    `oracle_from_snapshot` of the raw snapshot), not the oracle guard's medians: the bounds and the crossing
    are priced where `_checkBounds` prices them, so `BoundTooLoose` cannot happen by construction. With
    `gmx`, every leg's expected GMX fill must reach its minimum, else `FillShortOfBound` (the transaction
    would revert `FillOutsideBound` on chain).

    `held` (the manager's token balances before the order, per asset; a lower bound such as Σ books' cash is
    safe) makes the order fundable in the contract's execution order: `_moveLending` repays BEFORE it
    withdraws collateral, so a repay can use only what the manager holds plus the redeem legs' output. When a
    crossing would pay a repay with tokens that only a withdrawal (later in the transaction) frees, the
    mint-side vaults keep the unfundable part as cash instead of crossing it (pro rata, largest remainder)
    and the redeem leg grows by it; their GLP follows on a later rebalance. Without `held`, no adjustment.
    `check_funding` then verifies the whole sequence (else `InsufficientBalance` would revert on chain).

    With `sweep_stray`, every non-denomination `cash` in `books` (stray surplus tokens) is sold into GLP
    for its vault; a vault with stray cash and no change gets an implicit empty change.
    """
    n = oracle.asset_count
    if not 0 <= flags <= 7:
        raise NettingError(f"flags {flags} out of range")
    if slippage_bps < 0 or oracle.fee_bps + slippage_bps > max_slippage_bps:
        raise BoundTooLoose(
            f"fee {oracle.fee_bps} + slippage {slippage_bps} bps exceeds maxSlippageBps {max_slippage_bps}"
        )
    if oracle.fee_bps + slippage_bps >= BPS:
        raise BoundTooLoose("fee + slippage must stay below 10_000 bps")
    by_id: dict[int, VaultChange] = {}
    for c in changes:
        if c.vault_id in by_id:
            raise NettingError(f"vault {c.vault_id} appears twice")
        _check_change(c, n)
        by_id[c.vault_id] = c
    swept: dict[int, list[int]] = {}
    if sweep_stray and books:
        for vid, book in books.items():
            stray = [0 if i == book.denomination else max(book.cash[i], 0) for i in range(n)]
            if any(stray):
                swept[vid] = stray
                if vid not in by_id:
                    z = (0,) * n
                    by_id[vid] = VaultChange(vid, book.denomination, frozenset({book.denomination}), 0, z, z, z, 0)
                elif by_id[vid].denomination != book.denomination:
                    raise NettingError(f"vault {vid}: denomination differs from its book")
    ids = sorted(by_id)
    tokens: dict[int, list[int]] = {}
    for vid in ids:
        c = by_id[vid]
        s = swept.get(vid, [0] * n)
        tokens[vid] = [
            c.debt[i] - c.collateral[i] - (c.buffer if i == c.denomination else 0) + s[i] for i in range(n)
        ]
    if held is not None:
        _fund_repays(tokens, by_id, ids, held, n)
    glp: dict[int, list[int]] = {vid: [0] * n for vid in ids}
    legs: list[GlpLeg] = []
    crossings: list[Crossing] = []
    keep = BPS - oracle.fee_bps - slippage_bps
    for i in range(n):
        pos = {v: tokens[v][i] for v in ids if tokens[v][i] > 0}
        neg = {v: -tokens[v][i] for v in ids if tokens[v][i] < 0}
        p, q = sum(pos.values()), sum(neg.values())
        if p == 0 and q == 0:
            continue
        crossed_glp = 0
        if p >= q:  # net mint (or a pure cross): the redeem side is crossed in full
            for v, amount in neg.items():
                g = math.ceil(oracle.tokens_to_glp(i, amount))
                glp[v][i] -= g
                crossed_glp += g
            net = p - q
            minimum = 0
            if net > 0:
                minimum = math.floor(oracle.tokens_to_glp(i, net) * Fraction(keep, BPS))
                if oracle.glp_supply > 0:  # the contract's rounding (values floor, required ceils) may need +1
                    minimum = max(minimum, min_mint_glp(oracle, i, net, max_slippage_bps))
                if minimum <= 0:
                    raise NettingError(f"asset {i}: mint of {net} units is below one GLP unit")
                legs.append(GlpLeg(asset=i, glp=minimum, token_amount=net))
            for v, share in split_largest_remainder(crossed_glp + minimum, pos).items():
                glp[v][i] += share
        else:  # net redeem: the mint side is crossed in full
            for v, amount in pos.items():
                g = math.floor(oracle.tokens_to_glp(i, amount))
                glp[v][i] += g
                crossed_glp += g
            need = q - p
            glp_in = math.ceil(oracle.tokens_to_glp(i, need) * Fraction(BPS, keep))
            if oracle.glp_supply > 0:  # the contract's rounding may allow one unit less than the exact bound
                glp_in = min(glp_in, max_redeem_glp(oracle, i, need, max_slippage_bps))
            legs.append(GlpLeg(asset=i, glp=-glp_in, token_amount=need))
            for v, share in split_largest_remainder(crossed_glp + glp_in, neg).items():
                glp[v][i] -= share
        crossings.append(
            Crossing(
                asset=i, mint_gross=p, redeem_gross=q, crossed_tokens=min(p, q), crossed_glp=crossed_glp,
                net_tokens=p - q, token_price=oracle.token_price[i], glp_aum=oracle.glp_aum,
                glp_supply=oracle.glp_supply,
            )
        )
    deltas: list[VaultDelta] = []
    flows: list[VaultFlow] = []
    for vid in ids:
        c = by_id[vid]
        cash = tuple(c.debt[i] - c.collateral[i] - tokens[vid][i] for i in range(n))
        debt = tuple(c.debt[i] + c.interest[i] for i in range(n))
        d = VaultDelta(vault=vid, glp=tuple(glp[vid]), cash=cash, collateral=tuple(c.collateral), debt=debt)
        flows.append(VaultFlow(vid, tuple(tokens[vid]), tuple(swept.get(vid, [0] * n)), tuple(glp[vid])))
        if any(d.glp) or any(cash) or any(d.collateral) or any(debt):
            deltas.append(d)
    order = Order(
        deadline=deadline,
        flags=flags,
        glp=tuple(legs),
        supply=tuple(sum(by_id[v].collateral[i] for v in ids) for i in range(n)),
        borrow=tuple(sum(by_id[v].debt[i] for v in ids) for i in range(n)),
        interest=tuple(sum(by_id[v].interest[i] for v in ids) for i in range(n)),
        process_vaults=tuple(process_vaults),
        deltas=tuple(deltas),
    )
    check_bounds(order, oracle, max_slippage_bps)  # by construction; a failure is a sizing bug or dust
    if held is not None:
        check_funding(order, held)
    if gmx is not None:
        check_expected_fills(order, gmx, [leg_bound(leg, oracle, max_slippage_bps)[1] for leg in order.glp])
    return NetPlan(order, tuple(flows), tuple(crossings), oracle, slippage_bps, max_slippage_bps)


def _fund_repays(
    tokens: dict[int, list[int]], by_id: Mapping[int, VaultChange], ids: Sequence[int], held: Sequence[int], n: int
) -> None:
    """Keep mint-side tokens as cash where crossing them would fund a repay that executes before the
    withdrawal freeing them. Per asset i: repay R = −Σ debt (net, if negative), redeem(x) = max(N − (P − x), 0);
    the smallest x in [0, P] with held + redeem(x) >= R is taken off the mint side (in place)."""
    for i in range(n):
        repay = max(-sum(by_id[v].debt[i] for v in ids), 0)
        if repay <= held[i]:
            continue
        pos = {v: tokens[v][i] for v in ids if tokens[v][i] > 0}
        p = sum(pos.values())
        q = sum(-tokens[v][i] for v in ids if tokens[v][i] < 0)
        keep = min(max(repay - held[i] - q + p, 0), p)
        if keep == 0:
            continue
        for v, share in split_largest_remainder(keep, pos).items():
            tokens[v][i] -= share


def separate_plans(
    changes: Sequence[VaultChange], oracle: Oracle, *, slippage_bps: int, max_slippage_bps: int, deadline: int
) -> tuple[NetPlan, ...]:
    """Each vault executed on its own (its own legs, no crossing) — the benchmark baseline."""
    return tuple(
        net_changes([c], oracle, slippage_bps=slippage_bps, max_slippage_bps=max_slippage_bps, deadline=deadline)
        for c in sorted(changes, key=lambda c: c.vault_id)
    )


def gross_notional(plan: NetPlan) -> Fraction:
    """Exact USD × 1e30 at the marks of the token side of the plan's GLP legs."""
    return sum((plan.oracle.token_value(leg.asset, leg.token_amount) for leg in plan.order.glp), Fraction(0))


def compare_notional(plan: NetPlan) -> NotionalComparison:
    """Netted order vs every vault alone: the alone-notional of vault v is Σ_i |F_v[i]| at the marks
    (exactly the token side of its own legs), so netted <= separate by the triangle inequality."""
    separate = sum(
        (plan.oracle.token_value(i, abs(f)) for flow in plan.flows for i, f in enumerate(flow.tokens)),
        Fraction(0),
    )
    changed = sum(1 for d in plan.order.deltas)
    return NotionalComparison(
        netted_usd30=math.floor(gross_notional(plan)),
        separate_usd30=math.floor(separate),
        netted_txs=1 if plan.order.deltas or plan.order.glp else 0,
        separate_txs=changed,
    )
