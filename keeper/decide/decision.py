"""`decide(snapshot, rules_by_vault, memory) -> Decision`: the single entry point of the decision core.

Owns the orchestration: the cycle steps (mark, interest, queue, buffer), the per-vault fit, every trigger
evaluation, halts, the cost gate, the plan, and the two memories to persist. Pure: frozen dataclasses
in and out, time only from `snapshot.block_timestamp`, no web3, no I/O, no floats, never mutates input.

Memory: `Decision.memory` holds observations only (marks, hedge PnL, OI timers, weight samples, halts)
and is always safe to persist; `Decision.memory_after_execution` adds what the plan establishes (OI
applied, invested equity, PnL settled, acknowledged halts cleared) and must be persisted only once the
plan has executed. A restart therefore neither resets nor fakes a timer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from fractions import Fraction

from keeper.decide import triggers as t
from keeper.decide.cycle import BufferDecision, Queue, assign_interest, buffer_policy, mark_hedges, queue
from keeper.decide.exposure import Marks, book_equity, exposure_per_glp, health_factor, marks, net_oi
from keeper.decide.fit import FitInfeasible, FitInput, FitResult, Holdings, debt_drift, fit
from keeper.decide.memory import drop, lookup, put, record_weight, weight_series
from keeper.decide.plan import Plan, VaultPlan
from keeper.decide.rules import Rules
from keeper.errors import DecisionHalt
from keeper.snapshot import Book, Memory, Snapshot
from keeper.units import BPS, USD30, WAD

PPM = 1_000_000


@dataclass(frozen=True)
class Decision:
    plan: Plan | None
    triggers: tuple[t.TriggerResult, ...]  # every evaluation, fired or not
    halts: tuple[t.TriggerResult, ...]  # reasons that block trading (a vault or everything)
    memory: Memory  # persist now
    memory_after_execution: Memory  # persist once the plan executed (== memory without a plan)

    @property
    def fired(self) -> tuple[t.TriggerResult, ...]:
        return tuple(r for r in self.triggers if r.fired)

    def raise_if_halted(self) -> None:
        if self.halts:
            raise DecisionHalt("; ".join(h.reason() for h in self.halts))


@dataclass(frozen=True)
class VaultState:
    """Everything computed for one vault before the triggers."""

    book: Book
    rules: Rules
    interest: tuple[int, ...]
    current: Holdings  # debt includes interest
    equity: Fraction
    queue: Queue
    buffer: BufferDecision
    fit_input: FitInput
    result: FitResult | None
    infeasible: str | None


def _hedged(snap: Snapshot, book: Book, rules: Rules) -> frozenset[int]:
    wanted = set(rules.hedged_assets)
    return frozenset(
        i for i, a in enumerate(snap.assets)
        if i != book.denomination and (a.is_stable or a.symbol in wanted)
    )


def _borrow_room(snap: Snapshot) -> list[int | None]:
    """Further debt the caps still allow per asset: cap − the reserve's total debt over all borrowers (as the
    Pool's cap check counts it). The total includes the account's own debt (its pool debt, unassigned
    interest included), so the larger of the two is counted: exact against the debt token's rounding, and a
    snapshot without `total_debt` falls back to the account's own debt. Negative when over the cap."""
    room: list[int | None] = []
    for a in snap.assets:
        if a.borrow_cap_tokens == 0:
            room.append(None)
        else:
            room.append(a.borrow_cap_tokens * 10**a.decimals - max(a.total_debt, a.account_debt))
    return room


def _vault_state(snap: Snapshot, m: Marks, book: Book, *, rules: Rules, interest: tuple[int, ...],
                 mem: Memory, room: list[int | None], exposures: dict[int, tuple[Fraction, ...]]) -> VaultState:
    d = book.denomination
    debt = tuple(book.debt[i] + interest[i] for i in range(len(book.debt)))
    current = Holdings(book.glp, book.cash, book.collateral, debt)
    equity = book_equity(book, m, interest)
    q = queue(book, m, equity)
    buf = buffer_policy(book, m, equity, q, rules=rules, invested_prev=lookup(mem.invested, book.vault_id))
    inp = FitInput(
        current=current,
        denomination=d,
        hedged=_hedged(snap, book, rules),
        exposure=_exposure(snap, m, rules.trader_oi_hedge_bps, exposures),
        lt_bps=snap.assets[d].liquidation_threshold_bps,
        hf_target=Fraction(rules.hf_target_wad, WAD),
        buffer=buf.trade,
        notional_cap=Fraction(rules.notional_cap_usd * USD30),
        borrow_room=tuple(room),
    )
    try:
        result: FitResult | None = fit(inp, m)
        infeasible = None
    except FitInfeasible as exc:
        result, infeasible = None, str(exc)
    return VaultState(book, rules, interest, current, equity, q, buf, inp, result, infeasible)


def _exposure(snap: Snapshot, m: Marks, bps: int, cache: dict[int, tuple[Fraction, ...]]) -> tuple[Fraction, ...]:
    """exposure_per_glp once per tick per OI-hedge ratio (the same for every vault that shares it)."""
    if bps not in cache:
        cache[bps] = exposure_per_glp(snap, m, bps)
    return cache[bps]


def _corrected_usd(st: VaultState, m: Marks) -> Fraction:
    assert st.result is not None
    tgt = st.result.target
    return sum((abs(tgt.debt[i] - st.current.debt[i]) * m.price[i] for i in range(len(tgt.debt))), Fraction(0))


def _cost_usd(snap: Snapshot, m: Marks, st: VaultState, gas_price_wei: int) -> Fraction:
    assert st.result is not None
    gas = Fraction(0)
    try:
        g = snap.asset_index(st.rules.gas_asset)
        gas = st.rules.gas_units_per_rebalance * gas_price_wei * Fraction(10 ** snap.assets[g].decimals, 10**18) \
            * m.price[g]
    except KeyError:
        pass
    glp_moved = abs(st.result.target.glp - st.current.glp) * m.glp_price
    return gas + glp_moved * Fraction(snap.glp.mint_burn_fee_bps, BPS)


def _vault_plan(st: VaultState, reasons: list[str], *, trade: bool) -> VaultPlan | None:
    """The vault's changes; without `trade` only processBuffers (no position or interest change)."""
    assert st.result is not None
    cur = st.current
    tgt = st.result.target if trade else Holdings(st.book.glp, st.book.cash, st.book.collateral, st.book.debt)
    n = len(cur.cash)
    book = st.book
    vp = VaultPlan(
        vault_id=book.vault_id,
        denomination=book.denomination,
        glp=tgt.glp - cur.glp,
        glp_target=tgt.glp,
        cash=tuple(tgt.cash[i] - cur.cash[i] for i in range(n)),
        cash_target=tgt.cash,
        collateral=tuple(tgt.collateral[i] - cur.collateral[i] for i in range(n)),
        collateral_target=tgt.collateral,
        debt=tuple(tgt.debt[i] - book.debt[i] for i in range(n)),
        debt_target=tgt.debt,
        interest=st.interest if trade else tuple(0 for _ in st.interest),
        process=st.queue.deposits > 0 or st.queue.owed > 0 or book.pending_withdrawal_shares > 0,
        partial=st.result.partial and trade,
        reasons=tuple(reasons + ([f"partial fit λ={t.show(st.result.fraction, 6)} capped by "
                                  f"{', '.join(st.result.capped_by)}"] if st.result.partial else [])
                      + [st.buffer.reason]),
    )
    moved = vp.glp or any(vp.cash) or any(vp.collateral) or any(vp.debt) or vp.process
    return vp if moved else None


def decide(snapshot: Snapshot, rules_by_vault: Mapping[int, Rules], memory: Memory | None = None,
           *, gas_price_wei: int | None = None) -> Decision:
    """Evaluate every trigger on one snapshot and, if any fires, plan the rebalance.

    `rules_by_vault`: vault id → Rules (missing vaults use `Rules()`); `memory` defaults to
    `snapshot.memory`; `gas_price_wei` overrides each vault's `Rules.gas_price_wei` for the cost gate.
    """
    snap = snapshot
    mem0 = memory if memory is not None else snap.memory
    now = snap.block_timestamp
    m = marks(snap)
    rules = {b.vault_id: rules_by_vault.get(b.vault_id, Rules()) for b in snap.books}
    results: list[t.TriggerResult] = []
    halts: list[t.TriggerResult] = []

    # (1) mark hedges → memory (observation)
    mem = mark_hedges(snap, m, mem0)
    # (2) borrow cost, (3) GLP re-mark, (4) queue, (5) buffer, (6) fit, (7) margin: per vault
    interest = assign_interest(snap)
    room = _borrow_room(snap)
    exposures: dict[int, tuple[Fraction, ...]] = {}
    states = {b.vault_id: _vault_state(snap, m, b, rules=rules[b.vault_id], interest=interest[b.vault_id],
                                          mem=mem, room=room, exposures=exposures)
              for b in snap.books}

    # --- triggers -------------------------------------------------------------------------------
    wanted: dict[int, list[str]] = {v: [] for v in states}
    urgent: set[int] = set()
    profit_vaults: set[int] = set()
    cycle_fired = False
    for v, st in states.items():
        r = t.cycle(now, snap.manager.last_cycle_at, st.rules.cycle_seconds)
        results.append(replace(r, scope=f"vault:{v}"))
        if r.fired:
            cycle_fired = True
    if cycle_fired:
        for v in states:
            wanted[v].append("recurring cycle due")
            urgent.add(v)
            profit_vaults.add(v)

    # health factor: the lending account (every vault refits) and each vault's own share of it
    account_hf = [t.health_factor(snap.lending.health_factor, r.hf_trigger_wad) for r in rules.values()]
    account_low = any(r.fired for r in account_hf)
    results.extend(replace(r, scope=f"account→vault:{v}") for v, r in zip(rules, account_hf, strict=True))
    for v, st in states.items():
        own = health_factor(st.current.collateral, st.current.debt, snap, m)
        own_wad = 2**256 - 1 if own is None else math.floor(own * WAD)
        r = replace(t.health_factor(own_wad, st.rules.hf_trigger_wad), scope=f"vault:{v}")
        results.append(r)
        if r.fired or account_low:
            wanted[v].append(r.reason() if r.fired else f"account health factor below trigger: refit vault {v}")
            urgent.add(v)

    # net OI: one timer per hedged asset; thresholds = the strictest over the vaults
    first = rules[min(rules)] if rules else Rules()
    oi_bps = min((r.oi_drift_bps for r in rules.values()), default=first.oi_drift_bps)
    oi_hold = min((r.oi_drift_seconds for r in rules.values()), default=first.oi_drift_seconds)
    hedged_symbols = sorted({s for r in rules.values() for s in r.hedged_assets})
    oi_now_by_symbol: dict[str, Fraction] = {}
    oi_fired = False
    for sym in hedged_symbols:
        try:
            asset = snap.assets[snap.asset_index(sym)]
        except KeyError:
            continue
        if asset.is_stable:
            continue
        oi = net_oi(asset)
        oi_now_by_symbol[sym] = oi
        applied = lookup(mem.oi_applied, sym)
        if applied is None:  # first run: the books are assumed fitted to the OI seen now (documented)
            mem = replace(mem, oi_applied=put(mem.oi_applied, sym, math.floor(oi)))
            applied = math.floor(oi)
        r, since = t.net_oi(sym, t.oi_drift_ratio(oi, applied), lookup(mem.oi_drift_since, sym), now=now,
                             drift_bps=oi_bps, hold_seconds=oi_hold)
        mem = replace(mem, oi_drift_since=put(mem.oi_drift_since, sym, since) if since is not None
                      else drop(mem.oi_drift_since, sym))
        results.append(r)
        oi_fired = oi_fired or r.fired
    gate_exempt: set[int] = set()
    if oi_fired:
        # The OI refit is account-wide (the applied OI advances only when every vault refits), and the drift
        # has persisted for hours: the cost gate must not hold one vault back, or the trigger would refire
        # every tick while the other vaults trade again and again.
        for v in states:
            wanted[v].append("net OI hedge drifted: refit with the new OI hedge")
            gate_exempt.add(v)

    # volatility weight samples (observation), with the lowest vault id's OI hedge ratio
    e_obs = exposure_per_glp(snap, m, first.trader_oi_hedge_bps)
    for i, token in enumerate(snap.assets):
        if token.is_stable or m.glp_price == 0:
            continue
        ppm = max(0, math.floor(e_obs[i] * m.price[i] / m.glp_price * PPM))
        mem = record_weight(mem, token.symbol, now, ppm, every=first.band_sample_seconds,
                            window=first.band_window_seconds)

    blocked: set[int] = set()
    needs_trade: set[int] = set()
    for v, st in states.items():
        if st.infeasible is not None or st.result is None:
            halt = t.TriggerResult("fit", f"vault:{v}", True, "halt", "-", "-", "", now, st.infeasible or "")
            halts.append(halt)
            results.append(halt)
            blocked.add(v)
            continue
        full = st.result.full
        drifts = debt_drift(st.current.debt, full.debt, st.fit_input.hedged)
        for a, drift in drifts.items():
            sym = snap.assets[a].symbol
            use_bands = st.rules.drift_policy == "bands" and st.current.glp > 0 and st.current.debt[a] > 0 \
                and not snap.assets[a].is_stable
            if not use_bands:
                r = t.delta_drift(v, sym, drift, st.rules.drift_bps)
                results.append(r)
                if r.fired:
                    wanted[v].append(r.reason())
                continue
            key = f"band:{v}:{sym}"
            series = weight_series(mem, sym, now=now, window=st.rules.band_window_seconds)
            inner, outer, _ = t.band_widths(series, st.rules)
            deviation = None if full.debt[a] == 0 else Fraction(st.current.debt[a], full.debt[a]) - 1
            halted_since = lookup(mem.halts, key)
            ack = lookup(mem.acks, key)
            acknowledged = halted_since is not None and ack is not None and ack >= halted_since
            r = t.band(v, sym, deviation, inner_bps=inner, outer_bps=outer, halted_since=halted_since,
                       acknowledged=acknowledged, now=now)
            results.append(r)
            if r.action == "halt":
                mem = replace(mem, halts=put(mem.halts, key, r.since if r.since is not None else now))
                halts.append(r)
                blocked.add(v)
            elif r.fired:
                wanted[v].append(r.reason())
            elif halted_since is not None:  # the weight returned: the halt clears
                mem = replace(mem, halts=drop(mem.halts, key), acks=drop(mem.acks, key))
        pnl = lookup(mem.hedge_pnl, v) or 0
        r = t.hedge_pnl(v, pnl, st.equity, st.rules.hedge_pnl_bps)
        results.append(r)
        if r.fired:
            wanted[v].append(r.reason())
            profit_vaults.add(v)
        if st.queue.deposits or st.book.pending_withdrawal_shares:
            needs_fit = st.buffer.trade > st.book.cash[st.book.denomination]
            results.append(t.TriggerResult("queue", f"vault:{v}", True, "hedge" if needs_fit else "process",
                                           str(st.queue.deposits), str(st.queue.owed), "deposits/owed",
                                           detail="withdrawals exceed the buffer" if needs_fit else "process buffers"))
            wanted[v].append(f"queue: deposits {st.queue.deposits}, owed {st.queue.owed}")
            if needs_fit:
                needs_trade.add(v)

    if snap.manager.paused:
        halts.append(t.TriggerResult("paused", "account", True, "halt", "true", "false", "", now,
                                     "VaultManager is paused"))
        blocked = set(states)

    # --- cost gate and plan ----------------------------------------------------------------------
    gas_price = gas_price_wei
    vault_plans: list[VaultPlan] = []
    fitted: set[int] = set()
    for v, st in sorted(states.items()):
        if not wanted[v] or v in blocked or st.result is None:
            continue
        queue_only = all(w.startswith("queue:") for w in wanted[v]) and v not in needs_trade
        if v not in urgent and v not in gate_exempt and not queue_only:
            gas_wei = gas_price if gas_price is not None else st.rules.gas_price_wei
            gate = t.cost_gate(v, _cost_usd(snap, m, st, gas_wei), _corrected_usd(st, m), st.rules.cost_gate_bps,
                               urgent=False)
            results.append(gate)
            if gate.fired:
                continue
        trade = not queue_only or v in urgent
        if trade:
            fitted.add(v)
        vp = _vault_plan(st, wanted[v], trade=trade)
        if vp is not None:
            vault_plans.append(vp)

    plan: Plan | None = None
    after = mem
    if vault_plans or (cycle_fired and not snap.manager.paused):
        in_plan = {vp.vault_id for vp in vault_plans}
        profit = cycle_fired or bool(profit_vaults & in_plan)
        plan = Plan(
            block_number=snap.block_number,
            timestamp=now,
            assets=m.symbols,
            decimals=m.decimals,
            harvest=cycle_fired,
            recurring=cycle_fired,
            profit=profit,
            vaults=tuple(vault_plans),
            reasons=tuple(r.reason() for r in results if r.fired),
        )
        for v in in_plan:
            st = states[v]
            invested = st.equity - st.buffer.trade * m.price[st.book.denomination]
            after = replace(after, invested=put(after.invested, v, math.floor(invested)))
            if profit:
                after = replace(after, hedge_pnl=drop(after.hedge_pnl, v))
            for key, _ in mem.halts:
                if key.startswith(f"band:{v}:"):
                    after = replace(after, halts=drop(after.halts, key), acks=drop(after.acks, key))
    if plan is not None and fitted and fitted >= set(states) - blocked:
        for sym, oi in oi_now_by_symbol.items():
            after = replace(after, oi_applied=put(after.oi_applied, sym, math.floor(oi)),
                            oi_drift_since=drop(after.oi_drift_since, sym))
    return Decision(plan, tuple(results), tuple(halts), mem, after)
