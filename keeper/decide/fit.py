"""The per-vault delta fit: closed-form targets (GLP, debts, collateral), per-rebalance caps and margin.

Owns the fit described in docs/decision.md §2. Must not import web3, read the clock, do I/O or use floats.

Closed form (exact Fractions; M = the vault's hedged assets ≠ d, U = other non-denomination assets):
    S   = Σ_{a∈M} e_a·p_a                   USD of hedged exposure per GLP unit
    K   = Σ_{a∈M} cash_a·p_a                 stray cash in hedged assets (hedged too)
    K_U = Σ_{a∈U} cash_a·p_a                 untouched
    g   = (E − B·p_d − K_U − H·K/LT_d) / (P − S + H·S/LT_d)
    D_a = g·e_a + cash_a (a ∈ M),  C_d = H·Σ D_a·p_a / (p_d·LT_d),  other collateral 0, cash_d = B
Rounding to integers: g down; D_a = floor(g_int·e_a) + cash_a (under-hedged by < 1 unit, never over);
C_d = ceil(H·Σ D_a·p_a / (p_d·LT_d)) from the *integer* debts, so the vault's health factor is ≥ H exactly.
Equity moves by less than `rounding_bound` (derived in the docs).

Caps: one fraction λ ∈ [0, 1] scales every change (GLP, cash, collateral, debt) so that per asset
(|Δdebt| + |Δcollateral|)·p ≤ the notional cap and every debt increase fits the remaining borrow room;
λ < 1 is a *partial* fit (the next tick continues). Changes are truncated toward zero. Equity is linear
in the holdings, so the scaled fit keeps equity too. Afterwards `top_up_margin` restores the health
factor to ≥ H: collateral from the buffer first, then from GLP redeemed into the denomination
(GLP given up rounded up).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from keeper.decide.exposure import Marks
from keeper.units import BPS


@dataclass(frozen=True)
class Holdings:
    """A vault's positions in on-chain units (per-asset tuples follow the snapshot's assets)."""

    glp: int
    cash: tuple[int, ...]
    collateral: tuple[int, ...]
    debt: tuple[int, ...]

    def equity(self, m: Marks) -> Fraction:
        total = self.glp * m.glp_price
        for i in range(len(self.cash)):
            total += (self.cash[i] + self.collateral[i] - self.debt[i]) * m.price[i]
        return total


@dataclass(frozen=True)
class FitInput:
    """What the fit needs for one vault. `current.debt` already includes the interest assigned this cycle."""

    current: Holdings
    denomination: int
    hedged: frozenset[int]  # M: assets ≠ d that carry a debt hedge
    exposure: tuple[Fraction, ...]  # e_i per GLP unit
    lt_bps: int  # liquidation threshold of the denomination asset
    hf_target: Fraction  # H as a plain ratio (1.5)
    buffer: int  # B: cash[d] kept after the trades
    notional_cap: Fraction  # USD × 1e30 per asset per rebalance
    borrow_room: tuple[int | None, ...]  # per asset: further debt the account may take (None: no cap)


@dataclass(frozen=True)
class FitResult:
    target: Holdings  # after caps and margin top-up
    full: Holdings  # the uncapped closed-form target
    fraction: Fraction  # λ; 1 = complete
    capped_by: tuple[str, ...]
    margin_from_buffer: int
    margin_from_glp: int
    hf_restored: bool

    @property
    def partial(self) -> bool:
        return self.fraction < 1


class FitInfeasible(ValueError):
    """The vault's equity cannot carry a fit (non-positive GLP allocation)."""


def closed_form(inp: FitInput, m: Marks) -> Holdings:
    """The uncapped, integer-rounded fit (rounding as in the module docstring)."""
    cur, d, n = inp.current, inp.denomination, len(inp.current.cash)
    e, p, big_p = inp.exposure, m.price, m.glp_price
    lt = Fraction(inp.lt_bps, BPS)
    if lt <= 0:
        raise FitInfeasible(f"denomination asset {d} has no liquidation threshold")
    h = inp.hf_target
    others = [i for i in range(n) if i != d and i not in inp.hedged]
    s = sum((e[a] * p[a] for a in inp.hedged), Fraction(0))
    k = sum((cur.cash[a] * p[a] for a in inp.hedged), Fraction(0))
    k_u = sum((cur.cash[u] * p[u] for u in others), Fraction(0))
    equity = cur.equity(m)
    denominator = big_p - s + h * s / lt
    if denominator <= 0:
        raise FitInfeasible("GLP carries no net value in the denomination after hedging")
    g = (equity - inp.buffer * p[d] - k_u - h * k / lt) / denominator
    if g < 0:
        raise FitInfeasible(f"equity {equity} too small for buffer {inp.buffer} and margin")
    g_int = math.floor(g)
    debt = [0] * n
    for a in inp.hedged:
        debt[a] = max(0, math.floor(g_int * e[a]) + cur.cash[a])
    debt_usd = sum((debt[a] * p[a] for a in inp.hedged), Fraction(0))
    collateral = [0] * n
    collateral[d] = math.ceil(h * debt_usd / (p[d] * lt))
    cash = list(cur.cash)
    cash[d] = inp.buffer
    return Holdings(g_int, tuple(cash), tuple(collateral), tuple(debt))


def _cap_fraction(inp: FitInput, full: Holdings, m: Marks) -> tuple[Fraction, tuple[str, ...]]:
    cur = inp.current
    lam = Fraction(1)
    why: list[str] = []
    for i in range(len(cur.cash)):
        moved = abs(full.debt[i] - cur.debt[i]) + abs(full.collateral[i] - cur.collateral[i])
        notional = moved * m.price[i]
        if notional > inp.notional_cap:
            lam = min(lam, inp.notional_cap / notional)
            why.append(f"notional:{m.symbols[i]}")
        increase = full.debt[i] - cur.debt[i]
        room = inp.borrow_room[i]
        if room is not None and increase > 0 and increase > room:  # over the cap already: repaying stays free
            lam = min(lam, Fraction(max(room, 0), increase))
            why.append(f"borrow_cap:{m.symbols[i]}")
    return lam, tuple(why)


def _scale(cur: int, full: int, lam: Fraction) -> int:
    delta = (full - cur) * lam
    return cur + (math.floor(delta) if delta >= 0 else math.ceil(delta))  # truncate toward zero


def top_up_margin(h: Holdings, inp: FitInput, m: Marks) -> tuple[Holdings, int, int, bool]:
    """Raise collateral[d] until HF ≥ H: from cash[d] first, then GLP redeemed into d. Returns
    (holdings, from_buffer, glp_redeemed, restored)."""
    d = inp.denomination
    lt = Fraction(inp.lt_bps, BPS)
    debt_usd = sum((h.debt[i] * m.price[i] for i in range(len(h.debt))), Fraction(0))
    # collateral outside d (only ever withdrawn by the fit) is not counted: conservative
    need = max(0, math.ceil(inp.hf_target * debt_usd / (m.price[d] * lt)) - h.collateral[d]) if debt_usd else 0
    if need == 0:
        return h, 0, 0, True
    from_cash = min(need, h.cash[d])
    rest = need - from_cash
    glp_out = math.ceil(rest * m.price[d] / m.glp_price) if rest > 0 else 0
    restored = glp_out <= h.glp
    if not restored:
        glp_out = h.glp
        rest = math.floor(glp_out * m.glp_price / m.price[d])
    cash = list(h.cash)
    cash[d] -= from_cash
    coll = list(h.collateral)
    coll[d] += from_cash + rest
    return Holdings(h.glp - glp_out, tuple(cash), tuple(coll), h.debt), from_cash, glp_out, restored


def fit(inp: FitInput, m: Marks) -> FitResult:
    """Closed form, then caps (λ), then margin top-up."""
    cur = inp.current
    full = closed_form(inp, m)
    lam, why = _cap_fraction(inp, full, m)
    if lam >= 1:
        target = full
    else:
        n = len(cur.cash)
        target = Holdings(
            _scale(cur.glp, full.glp, lam),
            tuple(_scale(cur.cash[i], full.cash[i], lam) for i in range(n)),
            tuple(_scale(cur.collateral[i], full.collateral[i], lam) for i in range(n)),
            tuple(_scale(cur.debt[i], full.debt[i], lam) for i in range(n)),
        )
    target, from_buffer, from_glp, restored = top_up_margin(target, inp, m)
    return FitResult(target, full, lam, why, from_buffer, from_glp, restored)


def rounding_bound(inp: FitInput, m: Marks) -> Fraction:
    """Upper bound (USD × 1e30) on |equity(full fit) − equity(current)| from integer rounding:
    P + p_d + (H/LT_d + 1)·(S + Σ_{a∈M} p_a), S = Σ_{a∈M} e_a·p_a (derivation in docs/decision.md §2)."""
    lt = Fraction(inp.lt_bps, BPS)
    s = sum((abs(inp.exposure[a]) * m.price[a] for a in inp.hedged), Fraction(0))
    units = sum((m.price[a] for a in inp.hedged), Fraction(0))
    return m.glp_price + m.price[inp.denomination] + (inp.hf_target / lt + 1) * (s + units)


def debt_drift(current: Sequence[int], target: Sequence[int], assets: frozenset[int]) -> dict[int, Fraction | None]:
    """Per hedged asset |current / target − 1| (None: infinite, i.e. a target of 0 with a debt, or the reverse)."""
    out: dict[int, Fraction | None] = {}
    for a in sorted(assets):
        if target[a] == 0:
            out[a] = Fraction(0) if current[a] == 0 else None
        else:
            out[a] = abs(Fraction(current[a], target[a]) - 1)
    return out
