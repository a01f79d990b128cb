"""The cycle steps before the fit: mark hedges, assign borrow cost, count the queue, apply the buffer policy.

Owns (in this order, docs/decision.md §4): (1) hedge PnL marking from oracle returns into memory,
(2) realised borrow cost (`Asset.unassigned_debt`) assigned pro rata to book debt, (3) GLP re-marked
(by valuing at the current marks), (4) queued deposits / withdrawals, (5) the buffer policy that
chooses the buffer the fit keeps. The fit and the margin top-up are `keeper.decide.fit`.
Must not import web3, read the clock or do I/O; integers at the boundary, Fractions inside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction

from keeper.decide.exposure import Marks
from keeper.decide.memory import lookup, put
from keeper.decide.rules import Rules
from keeper.snapshot import Book, Memory, Snapshot
from keeper.units import BPS


def mark_hedges(snap: Snapshot, m: Marks, mem: Memory) -> Memory:
    """PnL of each vault's short hedges since the previous marks: Σ_i debt_i·(p_prev,i − p_i), i.e.
    notional_usd × (1 − p_T/p_{T−1}) per short, added to `hedge_pnl` (USD × 1e30, floor per vault).
    Assets without a previous mark contribute nothing. Marks are then moved to the current prices."""
    pnl = mem.hedge_pnl
    for book in snap.books:
        moved = Fraction(0)
        for i, asset in enumerate(snap.assets):
            prev = lookup(mem.marks, asset.symbol)
            if prev is not None and book.debt[i]:
                moved += Fraction(book.debt[i] * (prev - m.usd30[i]), 10**asset.decimals)
        if moved:
            pnl = put(pnl, book.vault_id, (lookup(pnl, book.vault_id) or 0) + math.floor(moved))
    marks_now: tuple[tuple[str, int], ...] = tuple(sorted(zip(m.symbols, m.usd30, strict=True)))
    return replace(mem, hedge_pnl=pnl, marks=marks_now, marked_at=snap.block_timestamp)


def assign_interest(snap: Snapshot) -> dict[int, tuple[int, ...]]:
    """Split each asset's `unassigned_debt` over the books pro rata to their debt in it: floor, then the
    whole remainder to the largest debt (lowest vault id on a tie). Nobody holds the asset → not assigned."""
    n = len(snap.assets)
    out = {b.vault_id: [0] * n for b in snap.books}
    for i, asset in enumerate(snap.assets):
        total = sum(b.debt[i] for b in snap.books)
        owed = asset.unassigned_debt
        if owed == 0 or total == 0:
            continue
        given = 0
        for b in snap.books:
            share = owed * b.debt[i] // total
            out[b.vault_id][i] = share
            given += share
        top = max(snap.books, key=lambda b: (b.debt[i], -b.vault_id))
        out[top.vault_id][i] += owed - given
    return {v: tuple(x) for v, x in out.items()}


@dataclass(frozen=True)
class Queue:
    """Queued user flows of one vault, in denomination units. `owed` = shares × equity / totalShares at the
    feed, rounded down (as the contract pays)."""

    deposits: int
    owed: int


def queue(book: Book, m: Marks, equity_book: Fraction) -> Queue:
    d = book.denomination
    owed = 0
    if book.pending_withdrawal_shares and book.total_shares:
        equity_all = equity_book + book.pending_deposits * m.price[d]
        owed = max(0, math.floor(book.pending_withdrawal_shares * equity_all / book.total_shares / m.price[d]))
    return Queue(book.pending_deposits, owed)


@dataclass(frozen=True)
class BufferDecision:
    """The buffer the fit keeps at trade time (`trade`) and why. `final` = the buffer after processBuffers.
    `top_up`: tokens taken from the buffer to hold invested equity at its last fit; `in_band`: the buffer
    after the queue and top-up sat within [min, max] bps of equity, so positions are not resized for it."""

    trade: int
    final: int
    top_up: int
    in_band: bool
    reason: str


def buffer_policy(book: Book, m: Marks, equity_book: Fraction, q: Queue, *, rules: Rules,
                  invested_prev: int | None) -> BufferDecision:
    """Deposits wait in the buffer, withdrawals are served from it first, a drop of invested equity below
    its last fit is topped up from it; only a buffer outside its band is reset to target (tokens rounded down)."""
    d = book.denomination
    p = m.price[d]
    buf = book.cash[d]
    after = buf + q.deposits - q.owed
    equity_after = equity_book + (q.deposits - q.owed) * p
    top_up = 0
    invested_now = equity_book - buf * p
    if invested_prev is not None and invested_prev > invested_now and after > 0:
        top_up = min(math.ceil((invested_prev - invested_now) / p), after)
    final = after - top_up
    lo = Fraction(rules.buffer_min_bps, BPS) * equity_after / p
    hi = Fraction(rules.buffer_max_bps, BPS) * equity_after / p
    in_band = final >= 0 and lo <= final <= hi
    if in_band:
        reason = f"buffer in band, top-up {top_up}" if top_up else "buffer in band"
    else:
        final = max(0, math.floor(Fraction(rules.buffer_target_bps, BPS) * equity_after / p))
        top_up = 0
        reason = (f"buffer outside [{rules.buffer_min_bps}, {rules.buffer_max_bps}] bps: "
                  f"reset to {rules.buffer_target_bps}")
    trade = final - q.deposits + q.owed
    if trade < 0:  # deposits exceed the buffer wanted: the rest waits in the buffer for the next fit
        final -= trade
        trade = 0
    return BufferDecision(trade, final, top_up, in_band, reason)
