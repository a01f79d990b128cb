"""The replay loop: one trigger policy over a series, tick by tick, through the daemon's own pure calls.

Per row (docs/backtest.md): accrue interest → build the Snapshot → `keeper.decide.decide` (memory carried
from the previous tick) → persist `Decision.memory`; with a plan: `plan_changes` → `keeper.net.net_changes`
(the daemon's parameters) → fills at the marks minus the GMX fee → `keeper.net.apply_order` (the pure
VaultManager) → `keeper.account.attribute` (fees and gas per vault) → persist `memory_after_execution`,
move the manager's marks. Then measure (hedge error, HF, drawdown) on the post-trade books.

Row 0 is the set-up: every vault starts as cash and `last_cycle_at` is one cycle old, so the recurring
cycle (urgent, identical for every policy) invests them; its costs are reported apart and the metrics
(rebalances, fees, gas) count from row 1. Money stays integer; floats only in the plotting samples.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TextIO

from keeper.account import attribute
from keeper.backtest.series import Row, Series
from keeper.backtest.world import (
    BPS,
    WAD,
    World,
    accrue_interest,
    fill_at_marks,
    funded_world,
    lending_account,
    price30,
    row_aum_usd30,
    snapshot,
    vault_hf_wad,
)
from keeper.decide import Decision, Plan, Rules, decide
from keeper.errors import InputError
from keeper.net import (
    Execution,
    NettingError,
    VaultChange,
    apply_order,
    books_cash,
    net_changes,
    oracle_from_snapshot,
)
from keeper.snapshot import Snapshot

OUT_OF_REACH = 10**12  # bps: a threshold no drift reaches (time-only policy; the gate "off")
POLICIES = ("fixed", "bands", "time")
PPM = 1_000_000
URGENT = ("cycle", "health_factor")


def policy_rules(name: str, gate: bool, base: Rules | None = None) -> Rules:
    """fixed: drift > 5% (the default); bands: volatility bands; time: only the 48h cycle (and the health
    factor, a safety trigger) — drift, net-OI and hedge-PnL thresholds out of reach. Without the gate the
    cost gate threshold is out of reach (note: `cost_gate_bps=0` would defer everything, see docs)."""
    r = base or Rules()
    if name == "fixed":
        r = replace(r, drift_policy="fixed")
    elif name == "bands":
        r = replace(r, drift_policy="bands")
    elif name == "time":
        r = replace(r, drift_policy="fixed", drift_bps=OUT_OF_REACH, oi_drift_bps=OUT_OF_REACH,
                    hedge_pnl_bps=OUT_OF_REACH)
    else:
        raise InputError("policies", f"unknown policy {name!r} (known: {', '.join(POLICIES)})")
    if not gate:
        r = replace(r, cost_gate_bps=OUT_OF_REACH)
    return r


@dataclass(frozen=True)
class Options:
    vaults: int = 3
    equity_usd: int = 1_000_000  # per vault, in its denomination at the first row's price
    gas_units: int = Rules().gas_units_per_rebalance  # gas per rebalance transaction (the cost model's figure)
    gas_price_wei: int = Rules().gas_price_wei  # when the series has no gas_price_gwei column
    slippage_bps: int = 35  # the daemon's default (config slippage_bps)
    max_slippage_bps: int = 100  # VaultManager.maxSlippageBps
    deadline_seconds: int = 600
    samples: int = 2_000  # plotting samples per run (a stride over the rows)


@dataclass
class VaultStats:
    vault_id: int
    denomination: str
    rebalances: int = 0
    fee_tokens: list[int] = field(default_factory=list)
    fee_usd30: int = 0
    gas_wei: int = 0
    gas_usd30: int = 0
    error_ppm_seconds: int = 0  # Σ hedge error (ppm of equity) × seconds held
    seconds: int = 0
    min_hf_wad: int | None = None
    peak_equity: int = 0  # denomination units
    max_drawdown_bps: int = 0
    start_equity: int = 0
    end_equity: int = 0
    end_equity_usd30: int = 0

    @property
    def hedge_error_bps(self) -> float:
        """Time-weighted mean of |exposure of the hedged assets| / equity, in bps (display)."""
        return self.error_ppm_seconds / self.seconds / 100 if self.seconds else 0.0


@dataclass
class PolicyResult:
    policy: str
    gate: bool
    symbols: tuple[str, ...]
    vaults: list[VaultStats]
    ticks: int = 0
    rebalances: int = 0  # transactions sent (set-up excluded)
    urgent_rebalances: int = 0
    refused: int = 0  # plans the netting / contract model refused (no trade, memory not advanced)
    halts: int = 0  # ticks with at least one halt
    fee_tokens: list[int] = field(default_factory=list)  # executed GMX fees per asset (GlpTraded.feeTokens)
    gas_wei: int = 0  # executed gas (gas units × price)
    unattributed_gas_wei: int = 0
    setup_fee_usd30: int = 0
    setup_gas_wei: int = 0
    min_account_hf_wad: int | None = None
    seconds: float = 0.0  # wall time
    samples_t: list[int] = field(default_factory=list)
    samples_error_ppm: list[list[int]] = field(default_factory=list)  # per sample, per vault
    samples_equity: list[list[int]] = field(default_factory=list)  # per sample, per vault (denomination units)

    @property
    def label(self) -> str:
        return f"{self.policy}{'+gate' if self.gate else ''}"

    @property
    def nonurgent_rebalances(self) -> int:
        return self.rebalances - self.urgent_rebalances

    @property
    def fee_usd30(self) -> int:
        return sum(v.fee_usd30 for v in self.vaults)

    @property
    def gas_usd30(self) -> int:
        return sum(v.gas_usd30 for v in self.vaults)


def plan_changes(plan: Plan, snap: Snapshot, rules: Mapping[int, Rules]) -> list[VaultChange]:
    """A decision plan as netting input — the same rule as `keeper.daemon.app.plan_changes` (copied so the
    backtest does not import web3 and the daemon; a test checks they agree)."""
    changes = []
    symbols = [a.symbol for a in snap.assets]
    for vp in plan.vaults:
        mandate = {vp.denomination} | {symbols.index(s) for s in rules[vp.vault_id].hedged_assets if s in symbols}
        mandate |= {i for i, a in enumerate(snap.assets) if a.is_stable}
        mandate |= {i for i in range(len(symbols)) if vp.debt[i] or vp.collateral[i] or vp.interest[i]}
        changes.append(VaultChange(
            vault_id=vp.vault_id, denomination=vp.denomination, mandate=frozenset(mandate), glp=vp.glp,
            collateral=vp.collateral, debt=tuple(d - i for d, i in zip(vp.debt, vp.interest, strict=True)),
            interest=vp.interest, buffer=vp.cash[vp.denomination]))
    return changes


class Progress:
    """A plain-text progress line on stderr, redrawn at most twice a second."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.label, self.total, self.stream, self.enabled = label, total, stream or sys.stderr, enabled
        self.started = time.monotonic()
        self.shown = 0.0

    def update(self, done: int, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.shown < 0.5:
            return
        self.shown = now
        rate = done / max(now - self.started, 1e-9)
        pct = 100.0 * done / self.total if self.total else 100.0
        width = 24
        bar = "#" * int(width * pct / 100)
        self.stream.write(f"\r{self.label:<12} [{bar:<{width}}] {pct:5.1f}% {done}/{self.total} ticks "
                          f"{rate:,.0f} ticks/s")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.update(self.total, force=True)
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class _Executed:
    fee_tokens: tuple[int, ...]
    gas_wei: int
    unattributed_gas_wei: int
    vault_fee_tokens: dict[int, tuple[int, ...]]
    vault_fee_usd30: dict[int, int]
    vault_gas_wei: dict[int, int]


def execute(world: World, snap: Snapshot, decision: Decision, rules: Mapping[int, Rules], *, opts: Options,
            gas_price_wei: int) -> _Executed:
    """Net, fill, apply and attribute one plan; moves the world (books, interest, manager, memory).
    Raises NettingError when the netting engine or the contract model refuses it (the world is unchanged)."""
    plan = decision.plan
    assert plan is not None
    oracle = oracle_from_snapshot(snap)
    net = net_changes(plan_changes(plan, snap, rules), oracle, slippage_bps=opts.slippage_bps,
                      max_slippage_bps=opts.max_slippage_bps, deadline=snap.block_timestamp + opts.deadline_seconds,
                      flags=plan.flags, process_vaults=[vp.vault_id for vp in plan.vaults if vp.process],
                      books={b.vault_id: b for b in snap.books},
                      # as the daemon: repays are funded in the contract's execution order from the books' cash
                      held=books_cash(snap.books, len(snap.assets)))
    legs = fill_at_marks(net.order, oracle)
    books = apply_order(world.books, net.order, legs)
    record = attribute(net, Execution(legs, opts.gas_units, gas_price_wei), world.rebalance_count + 1)
    world.books = books
    for i, x in enumerate(net.order.interest):
        world.unassigned[i] -= x
    ts = snap.block_timestamp
    world.rebalance_count += 1
    world.last_rebalance_at = ts
    if plan.recurring:
        world.last_cycle_at = ts
    if plan.harvest:
        world.last_harvest_at = ts
    if plan.profit:
        world.last_profit_at = ts
    world.memory = decision.memory_after_execution
    return _Executed(record.fee_tokens, record.gas_wei, record.unattributed_gas_wei,
                     {v.vault_id: v.fee_tokens for v in record.vaults},
                     {v.vault_id: v.fee_usd30 for v in record.vaults},
                     {v.vault_id: v.gas_wei for v in record.vaults})


def _hedged(world: World, rules: Rules, denomination: int) -> tuple[int, ...]:
    wanted = set(rules.hedged_assets)
    return tuple(i for i, s in enumerate(world.specs)
                 if i != denomination and (s.is_stable or s.symbol in wanted))


def glp_exposure_usd30(world: World, row: Row) -> Callable[[int], list[int]]:
    """USD × 1e30 of `glp` units' exposure per asset at this row: volatile a → glp × (pool − reserved +
    shortSize/avg) × price / supply (the true delta, docs/decision.md §1 with h = 1); the stables carry the
    rest of the GLP value pro rata to their pool value (floor everywhere)."""
    specs = world.specs
    supply = row.glp_supply
    aum = row_aum_usd30(specs, row)
    coef: list[tuple[int, int]] = []
    stable_pool: list[int] = []
    for i, s in enumerate(specs):
        p = price30(row.price[i])
        unit = 10**s.decimals
        if s.is_stable:
            coef.append((0, 1))
            stable_pool.append(row.pool[i] * p // unit)
            continue
        stable_pool.append(0)
        avg = row.short_avg[i]
        if avg:
            coef.append((((row.pool[i] - row.reserved[i]) * avg + row.short_size[i] * unit) * p, supply * avg * unit))
        else:
            coef.append(((row.pool[i] - row.reserved[i]) * p, supply * unit))
    stable_total = sum(stable_pool)

    def exposure(glp: int) -> list[int]:
        out = [glp * c // d if c else 0 for c, d in coef]
        rest = (glp * aum // supply if supply else 0) - sum(out)
        if stable_total:
            for i, sp in enumerate(stable_pool):
                if sp:
                    out[i] = rest * sp // stable_total
        return out

    return exposure


def run_policy(series: Series, policy: str, gate: bool, opts: Options = Options(), *,
               base_rules: Rules | None = None, progress: Progress | None = None) -> PolicyResult:
    """Replay `series` under one policy; returns its metrics (see module doc)."""
    if opts.vaults < 1:
        raise InputError("vaults", "need at least one vault")
    rows = series.rows
    specs = series.specs
    n = len(specs)
    rules_one = policy_rules(policy, gate, base_rules)
    world = funded_world(specs, rows[0], opts.vaults, opts.equity_usd)
    world.last_cycle_at = rows[0].timestamp - rules_one.cycle_seconds  # set-up: the cycle invests every vault
    rules = {b.vault_id: rules_one for b in world.books}
    hedged = {b.vault_id: _hedged(world, rules_one, b.denomination) for b in world.books}
    stats = [VaultStats(b.vault_id, specs[b.denomination].symbol, fee_tokens=[0] * n) for b in world.books]
    res = PolicyResult(policy, gate, series.symbols, stats, fee_tokens=[0] * n)
    weth = next((i for i, s in enumerate(specs) if s.symbol == rules_one.gas_asset), None)
    stride = max(1, len(rows) // max(opts.samples, 1))
    units = [int(10**s.decimals) for s in specs]
    last_error = [0] * opts.vaults
    started = time.perf_counter()
    prev_ts = rows[0].timestamp
    for k, row in enumerate(rows):
        dt = row.timestamp - prev_ts
        prev_ts = row.timestamp
        if k:
            accrue_interest(world, dt)
            for v, st in enumerate(stats):
                st.error_ppm_seconds += last_error[v] * dt
                st.seconds += dt
        gas_price = row.gas_price_wei if row.gas_price_wei is not None else opts.gas_price_wei
        snap = snapshot(world, row, k + 1)
        decision = decide(snap, rules, world.memory, gas_price_wei=gas_price)
        world.memory = decision.memory
        if decision.halts and k:
            res.halts += 1
        if decision.plan is not None:
            try:
                done = execute(world, snap, decision, rules, opts=opts, gas_price_wei=gas_price)
            except NettingError:
                res.refused += 1
                done = None
            if done is not None:
                p30_gas = price30(row.price[weth]) if weth is not None else 0
                if k == 0:
                    res.setup_fee_usd30 += sum(done.vault_fee_usd30.values())
                    res.setup_gas_wei += done.gas_wei
                else:
                    res.rebalances += 1
                    if any(r.fired and r.trigger in URGENT for r in decision.triggers):
                        res.urgent_rebalances += 1
                    res.gas_wei += done.gas_wei
                    res.unattributed_gas_wei += done.unattributed_gas_wei
                    for i, x in enumerate(done.fee_tokens):
                        res.fee_tokens[i] += x
                    for v, fees in done.vault_fee_tokens.items():
                        st = stats[v]
                        st.rebalances += 1
                        for i, x in enumerate(fees):
                            st.fee_tokens[i] += x
                        st.fee_usd30 += done.vault_fee_usd30[v]
                        st.gas_wei += done.vault_gas_wei[v]
                        st.gas_usd30 += done.vault_gas_wei[v] * p30_gas // WAD
        # --- measure the post-trade state at this row's prices ------------------------------------------------
        p30 = [price30(a) for a in row.price]
        exposure = glp_exposure_usd30(world, row)
        coll = [sum(b.collateral[i] for b in world.books) for i in range(n)]
        debt = [sum(b.debt[i] for b in world.books) + world.unassigned[i] for i in range(n)]
        hf = lending_account(specs, p30, coll, debt).health_factor
        if res.min_account_hf_wad is None or hf < res.min_account_hf_wad:
            res.min_account_hf_wad = hf
        sample = k % stride == 0 or k == len(rows) - 1
        if sample:
            res.samples_t.append(row.timestamp)
            res.samples_error_ppm.append([])
            res.samples_equity.append([])
        for v, b in enumerate(world.books):
            st = stats[v]
            x_glp = exposure(b.glp)
            equity = 0
            expo = [0] * n
            for i in range(n):
                tokens_usd = (b.cash[i] + b.collateral[i] - b.debt[i]) * p30[i] // units[i]
                expo[i] = x_glp[i] + tokens_usd
                equity += expo[i]
            err = PPM if equity <= 0 else sum(abs(expo[a]) for a in hedged[b.vault_id]) * PPM // equity
            last_error[v] = err
            d = b.denomination
            eq_d = max(equity, 0) * units[d] // p30[d]
            if k == 0:
                st.start_equity = eq_d
            st.peak_equity = max(st.peak_equity, eq_d)
            if st.peak_equity:
                st.max_drawdown_bps = max(st.max_drawdown_bps, (st.peak_equity - eq_d) * BPS // st.peak_equity)
            st.end_equity = eq_d
            st.end_equity_usd30 = equity
            own = vault_hf_wad(specs, p30, b)
            if own is not None and (st.min_hf_wad is None or own < st.min_hf_wad):
                st.min_hf_wad = own
            if sample:
                res.samples_error_ppm[-1].append(err)
                res.samples_equity[-1].append(eq_d)
        res.ticks += 1
        if progress is not None:
            progress.update(k + 1)
    res.seconds = time.perf_counter() - started
    if progress is not None:
        progress.finish()
    return res


def hf_display(wad: int | None) -> str:
    if wad is None or wad >= 2**255:
        return "-"
    return f"{math.floor(wad * 1000 // WAD) / 1000:.3f}"


def compare(series: Series, policies: Sequence[str], opts: Options = Options(), *,
            gates: Sequence[bool] = (True, False), base_rules: Rules | None = None,
            show_progress: bool = True) -> list[PolicyResult]:
    """Every policy with and without the cost gate, one after the other (each from the same start)."""
    for name in policies:
        policy_rules(name, True, base_rules)  # unknown names fail before any work
    results = []
    for name in policies:
        for gate in gates:
            label = f"{name}{'+gate' if gate else ''}"
            progress = Progress(label, len(series.rows), enabled=show_progress)
            results.append(run_policy(series, name, gate, opts, base_rules=base_rules, progress=progress))
    return results
