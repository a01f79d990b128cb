"""`decide(snapshot, rules_by_vault, memory) -> Decision`: the single entry point of the decision core.

Owns the orchestration: the cycle steps (mark, interest, queue, buffer), the per-vault fit, every trigger
evaluation, halts, the cost gate, the plan, and the two memories to persist. Pure: frozen dataclasses
in and out, time only from `snapshot.block_timestamp`, no web3, no I/O, no floats, never mutates input.

Memory: `Decision.memory` holds observations only (marks, hedge PnL, OI timers, weight samples, halts)
and is always safe to persist; `Decision.memory_after_execution` adds what the plan establishes (OI
applied, invested equity, PnL settled, acknowledged halts cleared, partial targets) for the vaults that
refit only, and must be persisted only once the plan has executed. A restart therefore neither resets
nor fakes a timer.

OI hedge: every fit uses the OI applied at the vault's last rebalance; only the net-OI and health-factor
refits take the OI seen now (docs/decision.md §1, §3). A capped (partial) rebalance continues next tick.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
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


OiVector = tuple[int | None, ...]  # per asset: the trader net OI a fit uses (None: the OI seen now)


def _vault_state(snap: Snapshot, m: Marks, book: Book, *, rules: Rules, interest: tuple[int, ...],
                 mem: Memory, room: list[int | None], exposure: tuple[Fraction, ...]) -> VaultState:
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
        exposure=exposure,
        lt_bps=snap.assets[d].liquidation_threshold_bps,
        hf_target=Fraction(rules.hf_target_wad, WAD),
        buffer=buf.trade,
        notional_cap=Fraction(rules.notional_cap_usd * USD30),
        borrow_room=tuple(room),
    )
    result, infeasible = _fit(inp, m)
    return VaultState(book, rules, interest, current, equity, q, buf, inp, result, infeasible)


def _fit(inp: FitInput, m: Marks) -> tuple[FitResult | None, str | None]:
    try:
        return fit(inp, m), None
    except FitInfeasible as exc:
        return None, str(exc)


def _refit(st: VaultState, exposure: tuple[Fraction, ...], m: Marks) -> VaultState:
    """The same vault fitted with another exposure per GLP (the OI hedge seen now instead of the applied one)."""
    inp = replace(st.fit_input, exposure=exposure)
    result, infeasible = _fit(inp, m)
    return replace(st, fit_input=inp, result=result, infeasible=infeasible)


def _exposure(snap: Snapshot, m: Marks, bps: int, oi: OiVector | None,
              cache: dict[tuple[int, OiVector | None], tuple[Fraction, ...]]) -> tuple[Fraction, ...]:
    """exposure_per_glp once per tick per (OI-hedge ratio, OI used): shared by every vault with the same inputs."""
    key = (bps, oi)
    if key not in cache:
        cache[key] = exposure_per_glp(snap, m, bps, oi)
    return cache[key]


@dataclass(frozen=True)
class OiApplied:
    """The trader OI each vault's hedges were fitted to: the account's `memory.oi_applied` unless the vault has
    its own row in `memory.oi_applied_vault`. `now`: the OI seen in this snapshot (hedged volatile symbols)."""

    now: Mapping[str, Fraction]
    account: Mapping[str, int]
    vault: Mapping[tuple[int, str], int]

    def of(self, vault_id: int, symbol: str) -> int:
        return self.vault.get((vault_id, symbol), self.account[symbol])

    def vector(self, snap: Snapshot, vault_id: int) -> OiVector:
        return tuple(self.of(vault_id, a.symbol) if a.symbol in self.now else None for a in snap.assets)

    def after(self, mem: Memory, vault_ids: list[int], refreshed: set[int]) -> Memory:
        """Memory once the refreshed vaults' refits executed: they carry the OI seen now (floor) and their own
        net-OI timers are answered (dropped). Where every vault carries the same OI it is the account's;
        otherwise the vaults that differ from the account keep their own rows."""
        account = dict(mem.oi_applied)
        rows: list[tuple[int, str, int]] = []
        for sym, oi in self.now.items():
            carried = {v: math.floor(oi) if v in refreshed else self.of(v, sym) for v in vault_ids}
            common = set(carried.values())
            if len(common) == 1:
                account[sym] = common.pop()
            else:
                rows.extend((v, sym, x) for v, x in carried.items() if x != account[sym])
        timers = tuple(row for row in mem.oi_drift_since_vault if not (row[0] in refreshed and row[1] in self.now))
        return replace(mem, oi_applied=tuple(sorted(account.items())), oi_applied_vault=tuple(sorted(rows)),
                       oi_drift_since_vault=timers, oi_drift_since=_earliest(mem.oi_drift_since, timers, self.now))


def _earliest(account: tuple[tuple[str, int], ...], timers: tuple[tuple[int, str, int], ...],
              symbols: Iterable[str]) -> tuple[tuple[str, int], ...]:
    """`memory.oi_drift_since` for `symbols`: the earliest running vault timer of each (dropped when none runs)."""
    for sym in symbols:
        running = [since for _, s, since in timers if s == sym]
        account = put(account, sym, min(running)) if running else drop(account, sym)
    return account


def _net_oi(snap: Snapshot, mem: Memory, rules: Mapping[int, Rules]
            ) -> tuple[Memory, OiApplied, list[t.TriggerResult], set[int]]:
    """Per-(vault, hedged volatile asset) net-OI timers, each on that vault's own drift from the OI it was fitted
    to, with that vault's rules: drift = |OI_now − OI_applied| / max(|OI_applied|, oi_drift_floor_bps × pool).
    A timer starts when its drift reaches the threshold, is kept while it stays, dropped when it falls back;
    it fires after the hold. Only the vaults whose own timer fired are refit (a halted vault's timer cannot make
    the others trade). Returns the observed memory, the OI applied, the results (per asset a summary, then one
    per vault) and the vaults to refit with the OI seen now. An older memory without per-vault timers seeds every
    vault's timer from its account-level `oi_drift_since` (a restart or an upgrade neither resets nor fakes it)."""
    now = snap.block_timestamp
    seen: dict[str, Fraction] = {}
    pools: dict[str, int] = {}
    for sym in sorted({s for r in rules.values() for s in r.hedged_assets}):
        try:
            asset = snap.assets[snap.asset_index(sym)]
        except KeyError:
            continue
        if asset.is_stable:
            continue
        seen[sym] = net_oi(asset)
        pools[sym] = asset.pool_amount
        if lookup(mem.oi_applied, sym) is None:  # first run: the books are assumed fitted to the OI seen now
            mem = replace(mem, oi_applied=put(mem.oi_applied, sym, math.floor(seen[sym])))
    ids = sorted(rules)
    applied = OiApplied(seen, dict(mem.oi_applied),
                        {(v, s): x for v, s, x in mem.oi_applied_vault if v in rules and s in seen})
    timers = {(v, s): x for v, s, x in mem.oi_drift_since_vault}
    results: list[t.TriggerResult] = []
    refresh: set[int] = set()
    for sym, oi in seen.items():
        legacy = None if any(s == sym for _, s in timers) else lookup(mem.oi_drift_since, sym)
        per: list[t.TriggerResult] = []
        drifts: list[Fraction | None] = []
        for v in ids:
            r_v = rules[v]
            floor = Fraction(pools[sym] * r_v.oi_drift_floor_bps, BPS)
            drift = t.oi_drift_ratio(oi, applied.of(v, sym), floor)
            r, since = t.net_oi(sym, drift, timers.get((v, sym), legacy), now=now, drift_bps=r_v.oi_drift_bps,
                                hold_seconds=r_v.oi_drift_seconds, vault_id=v)
            if since is None:
                timers.pop((v, sym), None)
            else:
                timers[(v, sym)] = since
            per.append(r)
            drifts.append(drift)
            if r.fired:
                refresh.add(v)
        results.append(t.net_oi_summary(sym, per, drifts))
        results.extend(per)
    rows = tuple(sorted((v, s, x) for (v, s), x in timers.items()))
    mem = replace(mem, oi_drift_since_vault=rows, oi_drift_since=_earliest(mem.oi_drift_since, rows, seen))
    return mem, applied, results, refresh


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


def _deviation(current: int, target: int) -> Fraction | None:
    """current / target − 1; a target of 0 reads 0 without a hedge and infinite (None) with one."""
    if target == 0:
        return Fraction(0) if current == 0 else None
    return Fraction(current, target) - 1


def _hedge_triggers(snap: Snapshot, v: int, st: VaultState, mem: Memory, recorded: Mapping[str, int] | None
                    ) -> tuple[Memory, list[t.TriggerResult], list[t.TriggerResult]]:
    """Delta drift (policy "fixed") or volatility bands (policy "bands") per hedged asset, measured against the
    uncapped fit with the OI hedge applied. Returns the memory (band halts raised or cleared), every result and
    the halts. Bands: a vault already invested (GLP or any debt) is judged by its bands even with a zero hedge
    (−100%: beyond the outer bound, so it halts); a vault not invested yet takes its first fit by the drift rule;
    a partial continuation (`recorded`: the uncapped targets of the capped rebalance) measures how far the
    target moved since then, since the gap left by the cap is the keeper's own."""
    assert st.result is not None
    full, cur, now = st.result.full, st.current, snap.block_timestamp
    invested = cur.glp > 0 or any(cur.debt)
    results: list[t.TriggerResult] = []
    halts: list[t.TriggerResult] = []
    for a, drift in debt_drift(cur.debt, full.debt, st.fit_input.hedged).items():
        sym = snap.assets[a].symbol
        banded = st.rules.drift_policy == "bands" and not snap.assets[a].is_stable
        if not banded or not (invested or recorded):
            r = t.delta_drift(v, sym, drift, st.rules.drift_bps)
            results.append(replace(r, detail="first investment: the bands apply once the vault is invested")
                           if banded else r)
            continue
        key = f"band:{v}:{sym}"
        series = weight_series(mem, sym, now=now, window=st.rules.band_window_seconds)
        inner, outer, _ = t.band_widths(series, st.rules)
        reference = None if recorded is None else recorded.get(sym)
        continuing = reference is not None
        deviation = _deviation(cur.debt[a], full.debt[a]) if reference is None else _deviation(full.debt[a], reference)
        halted_since = lookup(mem.halts, key)
        ack = lookup(mem.acks, key)
        acknowledged = halted_since is not None and ack is not None and ack >= halted_since
        r = t.band(v, sym, deviation, inner_bps=inner, outer_bps=outer, halted_since=halted_since,
                   acknowledged=acknowledged, now=now)
        if continuing:
            r = replace(r, detail=f"{r.detail}; partial continuation: target vs the capped rebalance's".lstrip("; "))
        results.append(r)
        if r.action == "halt":
            mem = replace(mem, halts=put(mem.halts, key, r.since if r.since is not None else now))
            halts.append(r)
        elif not r.fired and halted_since is not None:  # the weight returned: the halt clears
            mem = replace(mem, halts=drop(mem.halts, key), acks=drop(mem.acks, key))
    return mem, results, halts


def _gap_usd(st: VaultState, m: Marks) -> Fraction:
    """What is left between the current holdings and the uncapped target (GLP, collateral and debt legs)."""
    assert st.result is not None
    full, cur = st.result.full, st.current
    legs = sum(((abs(full.debt[i] - cur.debt[i]) + abs(full.collateral[i] - cur.collateral[i])) * m.price[i]
                for i in range(len(cur.debt))), Fraction(0))
    return legs + abs(full.glp - cur.glp) * m.glp_price


def _partial_targets(mem: Memory) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    for v, key, target in mem.partial_targets:
        out.setdefault(v, {})[key] = target
    return out


def _record_partial(mem: Memory, v: int, st: VaultState | None, symbols: tuple[str, ...] = ()) -> Memory:
    """Drop vault v's partial targets; with `st` whose fit was capped, record its uncapped targets instead."""
    rows = [row for row in mem.partial_targets if row[0] != v]
    if st is not None and st.result is not None and st.result.partial:
        full = st.result.full
        rows.append((v, "GLP", full.glp))
        rows.extend((v, symbols[a], full.debt[a]) for a in sorted(st.fit_input.hedged))
    return replace(mem, partial_targets=tuple(sorted(rows)))


def _after_execution(after: Memory, planned: Mapping[int, VaultState], refit: set[int], *, profit: bool,
                     m: Marks) -> Memory:
    """What the plan establishes, for the vaults that refit only (a queue-only or gated vault did not trade):
    invested equity, hedge PnL settled (profit plans), band halts cleared, partial targets."""
    for v in sorted(refit):
        st = planned[v]
        assert st.result is not None
        d = st.book.denomination
        invested = st.equity - st.result.target.cash[d] * m.price[d]  # equity less the buffer at trade time
        after = replace(after, invested=put(after.invested, v, math.floor(invested)))
        if profit:
            after = replace(after, hedge_pnl=drop(after.hedge_pnl, v))
        for key, _ in after.halts:
            if key.startswith(f"band:{v}:"):
                after = replace(after, halts=drop(after.halts, key), acks=drop(after.acks, key))
        after = _record_partial(after, v, st, m.symbols)
    return after


def decide(snapshot: Snapshot, rules_by_vault: Mapping[int, Rules], memory: Memory | None = None,
           *, gas_price_wei: int | None = None) -> Decision:
    """Evaluate every trigger on one snapshot and, if any fires, plan the rebalance.

    `rules_by_vault`: vault id → Rules (missing vaults use `Rules()`); `memory` defaults to
    `snapshot.memory`; `gas_price_wei` overrides each vault's `Rules.gas_price_wei` for the cost gate.
    Fits use the OI hedge applied at each vault's last rebalance; only the net-OI and health-factor refits
    use the OI seen now (docs/decision.md §3).
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
    # (2) borrow cost, (3) GLP re-mark, (4) queue, (5) buffer, (6) fit, (7) margin: per vault, with the OI applied
    interest = assign_interest(snap)
    room = _borrow_room(snap)
    mem, oi_applied, oi_results, oi_refresh = _net_oi(snap, mem, rules)
    exposures: dict[tuple[int, OiVector | None], tuple[Fraction, ...]] = {}
    states = {b.vault_id: _vault_state(
        snap, m, b, rules=rules[b.vault_id], interest=interest[b.vault_id], mem=mem, room=room,
        exposure=_exposure(snap, m, rules[b.vault_id].trader_oi_hedge_bps, oi_applied.vector(snap, b.vault_id),
                           exposures))
        for b in snap.books}

    # --- triggers -------------------------------------------------------------------------------
    wanted: dict[int, list[str]] = {v: [] for v in states}
    urgent: set[int] = set()
    profit_vaults: set[int] = set()
    gate_exempt: set[int] = set()
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
    hf_low: set[int] = set()
    for v, st in states.items():
        own = health_factor(st.current.collateral, st.current.debt, snap, m)
        own_wad = 2**256 - 1 if own is None else math.floor(own * WAD)
        r = replace(t.health_factor(own_wad, st.rules.hf_trigger_wad), scope=f"vault:{v}")
        results.append(r)
        if r.fired or account_low:
            wanted[v].append(r.reason() if r.fired else f"account health factor below trigger: refit vault {v}")
            urgent.add(v)
            hf_low.add(v)

    # net OI: refit the vaults whose own timer fired with the new OI hedge. The drift has persisted for hours: the
    # cost gate must not hold the vault back, or its fired timer would re-plan it every tick.
    results.extend(oi_results)
    for v in sorted(oi_refresh):
        wanted[v].append("net OI hedge drifted: refit with the new OI hedge")
        gate_exempt.add(v)
    # only the net-OI and health-factor refits refresh the OI hedge; every other refit keeps the OI applied
    refresh = oi_refresh | hf_low
    oi_now = tuple(math.floor(oi_applied.now[a.symbol]) if a.symbol in oi_applied.now else None for a in snap.assets)
    planned = {v: _refit(st, _exposure(snap, m, st.rules.trader_oi_hedge_bps, oi_now, exposures), m)
               if v in refresh else st for v, st in states.items()}

    # volatility weight samples (observation), with the lowest vault id's OI hedge ratio
    first = rules[min(rules)] if rules else Rules()
    e_obs = exposure_per_glp(snap, m, first.trader_oi_hedge_bps)
    for i, token in enumerate(snap.assets):
        if token.is_stable or m.glp_price == 0:
            continue
        ppm = max(0, math.floor(e_obs[i] * m.price[i] / m.glp_price * PPM))
        mem = record_weight(mem, token.symbol, now, ppm, every=first.band_sample_seconds,
                            window=first.band_window_seconds)

    partial = _partial_targets(mem)
    blocked: set[int] = set()
    needs_trade: set[int] = set()
    for v, st in states.items():
        infeasible = st.infeasible if st.result is None else planned[v].infeasible
        if infeasible is not None or st.result is None or planned[v].result is None:
            halt = t.TriggerResult("fit", f"vault:{v}", True, "halt", "-", "-", "", now, infeasible or "")
            halts.append(halt)
            results.append(halt)
            blocked.add(v)
            continue
        mem, hedge_results, hedge_halts = _hedge_triggers(snap, v, st, mem, partial.get(v))
        results.extend(hedge_results)
        wanted[v].extend(r.reason() for r in hedge_results if r.fired and r.action == "hedge")
        if hedge_halts:
            halts.extend(hedge_halts)
            blocked.add(v)
        if v in partial:  # the last rebalance was capped: continue (not gated) until the target is reached
            r = t.partial(v, _gap_usd(planned[v], m))
            results.append(r)
            wanted[v].append(r.reason())
            gate_exempt.add(v)
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
    vault_plans: list[VaultPlan] = []
    refit: set[int] = set()  # vaults whose fit the plan carries (their book is at its target afterwards)
    for v, st in sorted(planned.items()):
        if not wanted[v] or v in blocked or st.result is None:
            continue
        queue_only = all(w.startswith("queue:") for w in wanted[v]) and v not in needs_trade
        if v not in urgent and v not in gate_exempt and not queue_only:
            gas_wei = gas_price_wei if gas_price_wei is not None else st.rules.gas_price_wei
            gate = t.cost_gate(v, _cost_usd(snap, m, st, gas_wei), _corrected_usd(st, m), st.rules.cost_gate_bps,
                               urgent=False)
            results.append(gate)
            if gate.fired:
                continue
        trade = not queue_only or v in urgent
        vp = _vault_plan(st, wanted[v], trade=trade)
        if trade:
            refit.add(v)
            if vp is None and not st.result.partial:  # already at its target: a continuation is over
                mem = _record_partial(mem, v, None)
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
            # the asset-level net-OI summary is left out: the per-vault results name the vaults it refits
            reasons=tuple(r.reason() for r in results
                          if r.fired and not (r.trigger == "net_oi" and r.scope.startswith("asset:"))),
        )
        after = _after_execution(after, planned, refit, profit=profit, m=m)
        after = oi_applied.after(after, sorted(states), refresh & refit)
    return Decision(plan, tuple(results), tuple(halts), mem, after)
