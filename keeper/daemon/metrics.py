"""Prometheus metrics: every series the keeper exports, in one registry.

Conventions: `keeper_` prefix, base units (seconds, wei, token smallest units), `_total` counters,
bounded labels only (vault, asset, trigger, result, endpoint, reason) — never hashes or addresses.
Owns names and help texts; must not compute what it exports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from keeper import __version__


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        r = self.registry
        self.build_info = Info("keeper_build", "Build information.", registry=r)
        self.build_info.info({"version": __version__})
        self.ticks = Counter("keeper_ticks_total", "Head-watcher ticks run.", ["result"], registry=r)
        self.tick_duration = Histogram(
            "keeper_tick_duration_seconds",
            "Wall time of one tick.",
            registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.tick_overruns = Counter("keeper_tick_overruns_total", "Ticks that overran their interval.", registry=r)
        self.polls_skipped = Counter("keeper_scheduler_skipped_runs_total", "Scheduled runs skipped because the "
                                     "previous run of the job was still going (one worker).", ["job"], registry=r)
        self.heartbeat = Gauge("keeper_heartbeat_timestamp_seconds", "Wall time of the last head-watcher run "
                               "(set on every run, also when the head read fails).", registry=r)
        self.head_block = Gauge("keeper_head_block", "Latest block number seen.", registry=r)
        self.triggers = Counter("keeper_triggers_fired_total", "Triggers fired, by kind.", ["trigger"], registry=r)
        self.rebalances = Counter(
            "keeper_rebalances_total", "Rebalance intents by final result.", ["result"], registry=r
        )
        self.last_rebalance = Gauge(
            "keeper_last_successful_rebalance_timestamp_seconds",
            "Chain time of the vault's last successful rebalance: at least the VaultManager's lastCycleAt "
            "(every recurring cycle rebalances every vault), seeded from chain every tick.",
            ["vault"],
            registry=r,
        )
        self.rebalance_deadline = Gauge(
            "keeper_rebalance_deadline_seconds",
            "The vault's recurring-cycle interval (rules.cycle_seconds): overdue when time() - last > deadline.",
            ["vault"],
            registry=r,
        )
        self.delta_drift = Gauge(
            "keeper_delta_drift_ratio", "Hedge vs target, |current/target - 1|.", ["vault", "asset"], registry=r
        )
        self.health_factor = Gauge(
            "keeper_health_factor", "Lending account health factor (1.0 = liquidation).", registry=r
        )
        self.oi_drift = Gauge(
            "keeper_oi_drift_ratio", "OI hedge now vs applied at last rebalance.", ["asset"], registry=r
        )
        self.oi_drift_age = Gauge(
            "keeper_oi_drift_persisted_seconds",
            "How long the OI drift has stayed above its threshold.",
            ["asset"],
            registry=r,
        )
        self.hedge_pnl = Gauge(
            "keeper_hedge_pnl_equity_ratio", "Hedge PnL since last profit settlement / equity.", ["vault"], registry=r
        )
        self.vault_equity = Gauge(
            "keeper_vault_equity_usd", "Vault equity at oracle prices, USD.", ["vault"], registry=r
        )
        self.pending_txs = Gauge("keeper_pending_transactions", "Transactions sent and not yet mined.", registry=r)
        self.oldest_pending = Gauge(
            "keeper_oldest_pending_transaction_age_seconds",
            "Chain time since the oldest broadcast-but-unmined intent was first sent (0 when none).",
            registry=r,
        )
        self.gas_spent = Counter(
            "keeper_gas_spent_wei_total", "Gas cost attributed per vault, wei.", ["vault"], registry=r
        )
        self.failed_gas = Counter(
            "keeper_failed_transaction_gas_wei_total",
            "Gas paid by mined rebalance transactions that did not take effect, wei.",
            ["result"],
            registry=r,
        )
        self.fee_ledger_cost = Gauge(
            "keeper_fee_ledger_cost_usd", "Total rebalance cost recorded in the vault's fee ledger, USD.",
            ["vault"], registry=r,
        )
        self.fee_ledger_charged = Gauge(
            "keeper_fee_ledger_charged_usd", "Cost charged to the vault's holders at their settlements, USD.",
            ["vault"], registry=r,
        )
        self.fees_paid = Counter(
            "keeper_fees_paid_total",
            "Trading fees attributed per vault, token smallest units.",
            ["vault", "asset"],
            registry=r,
        )
        self.fee_cap_waits = Counter("keeper_fee_cap_waits_total", "Times a send waited at the fee cap.", registry=r)
        self.fee_cap_waiting = Gauge("keeper_fee_cap_waiting", "1 while an intent waits for fees to fall.", registry=r)
        self.signer_balance = Gauge("keeper_signer_balance_wei", "Signer account balance, wei.", registry=r)
        self.rpc_requests = Counter("keeper_rpc_requests_total", "RPC requests (read and send paths).", ["endpoint"],
                                    registry=r)
        self.rpc_errors = Counter("keeper_rpc_errors_total", "RPC errors (read and send paths).", ["endpoint"],
                                  registry=r)
        self.lyf_leverage = Gauge("keeper_lyf_leverage_ratio", "LYF position leverage (assets / equity).",
                                  ["position"], registry=r)
        self.lyf_delta_ratio = Gauge("keeper_lyf_delta_ratio", "LYF (LP volatile - volatile debt) / volatile debt.",
                                     ["position"], registry=r)
        self.lyf_oracle_stale = Gauge("keeper_lyf_oracle_stale", "1 while the LYF position's feed is stale.",
                                      ["position"], registry=r)
        self.lyf_blocked = Gauge("keeper_lyf_blocked", "1 while the LYF rebalance cannot reach the position's "
                                 "bounds (e.g. leverage below them after a fall: needs re-levering).",
                                 ["position"], registry=r)
        self.lyf_rebalances = Counter("keeper_lyf_rebalances_total", "LYF rebalances by outcome.",
                                      ["position", "result"], registry=r)
        self.lyf_triggers = Counter("keeper_lyf_triggers_total", "LYF triggers that led to a rebalance.",
                                    ["position", "trigger"], registry=r)
        self.rpc_head_lag = Gauge(
            "keeper_rpc_head_lag_blocks", "Blocks an endpoint's head is behind the best endpoint's.", ["endpoint"],
            registry=r,
        )
        self.rpc_latency = Histogram(
            "keeper_rpc_latency_seconds",
            "RPC latency.",
            ["endpoint"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.oracle_trips = Counter(
            "keeper_oracle_guard_trips_total", "Oracle guard trips.", ["asset", "reason"], registry=r
        )
        self.oracle_tripped = Gauge(
            "keeper_oracle_guard_tripped", "1 while the asset's price is refused.", ["asset"], registry=r
        )
        self.simulation_reverts = Counter(
            "keeper_simulation_reverts_total", "Intents stopped by the simulation gate.", ["error"], registry=r
        )
        self.ready = Gauge("keeper_ready", "1 while /readyz answers 200 (only the leader is ready).", registry=r)
        self.signer_balance_min = Gauge(
            "keeper_signer_balance_min_wei", "Configured minimum signer balance, wei.", registry=r
        )
        self.leader = Gauge("keeper_leader", "1 while this instance holds leadership.", registry=r)
        self.leadership_changes = Counter("keeper_leadership_changes_total", "Leadership gained or lost.", registry=r)
        self.paused = Gauge("keeper_paused", "1 while the pause switch is on.", registry=r)
        self.dry_run = Gauge("keeper_dry_run", "1 in dry-run mode (never signs).", registry=r)
        self.halted = Gauge("keeper_decision_halted", "1 while a halt reason blocks trading.", ["vault"], registry=r)
