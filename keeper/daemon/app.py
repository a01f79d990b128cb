"""`keeper run`: the product. Wires read → decide → net → execute → account on every new block.

Owns the per-block tick (snapshot, oracle guard, decision, safety switches, netting, submission), the
in-flight job (pipeline tick, accounting of executed rebalances) and start-up (config → endpoints,
signer, journal, leadership, metrics). Decisions are pure calls into keeper.decide / keeper.net /
keeper.account; this module only moves their inputs and outputs between the chain, the journal and
the metrics. Dry-run decides, nets and simulates but never signs.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.logs import DISCARD
from web3.types import RPCEndpoint

from keeper import log
from keeper.account import (
    Ledger,
    attribute,
    change_position,
    ledger_from_json_dict,
    ledger_to_json_dict,
    record_from_json_dict,
    record_rebalance,
)
from keeper.account.attribution import AttributionRecord
from keeper.chain.artifacts import abi as load_abi
from keeper.chain.oracle import OracleRules, Verdict
from keeper.chain.oracle import check as oracle_check
from keeper.chain.reader import Addresses, SnapshotReader
from keeper.config import KeeperSettings
from keeper.daemon.endpoints import Endpoints
from keeper.daemon.http import Health, serve
from keeper.daemon.journal import unaccounted
from keeper.daemon.lyf_job import LyfJob
from keeper.daemon.metrics import Metrics
from keeper.daemon.schedule import Daemon, Timing
from keeper.decide import Decision, Plan, Rules, decide, plan_from_json_dict, plan_to_json_dict
from keeper.errors import ConfigError, InputError, KeeperError, ReadError
from keeper.ha.fence import FencedChain
from keeper.ha.lease import FileLease, Leadership, Lease, PostgresLease, Renewer, renew_interval
from keeper.net import (
    ExecutedLeg,
    Execution,
    NetPlan,
    VaultChange,
    compare_notional,
    net_changes,
    oracle_from_snapshot,
    order_abi,
)
from keeper.snapshot import Memory, Snapshot, feed_price_usd30, memory_from_json_dict
from keeper.store import (
    ExpectedEvent,
    FencingError,
    Intent,
    IntentRecord,
    PostgresStore,
    State,
    Store,
    idempotency_key,
    open_store,
)

_log = log.get("keeper.daemon")

MEMORY_KEY = "decision.memory"
LEDGER_KEY = "fee.ledger"
LEDGER_POOL = "account"
MICRO_USD = 10**24  # USD × 1e30 → micro-USD
ACCOUNTED = "accounted"
ATTRIBUTION = "attribution"
PENDING = "pending"  # intent id → {"plan": ..., "memory_after": ...}
USD30 = 10**30


def rules_by_vault(cfg: KeeperSettings, vault_ids: list[int]) -> dict[int, Rules]:
    """Rules for every vault: defaults ← `default_rules` ← the vault's own overrides; errors name the field."""
    overrides = {v.id: v.rules for v in cfg.vaults}
    out: dict[int, Rules] = {}
    for vault_id in vault_ids:
        merged: dict[str, Any] = {"hedged_assets": tuple(cfg.hedged_assets), **cfg.default_rules}
        merged.update(overrides.get(vault_id, {}))
        if isinstance(merged.get("hedged_assets"), list):
            merged["hedged_assets"] = tuple(merged["hedged_assets"])
        try:
            out[vault_id] = Rules(**merged)
        except TypeError as exc:
            raise ConfigError(f"vaults[{vault_id}].rules: {exc}") from None
        except InputError as exc:
            raise ConfigError(f"vaults[{vault_id}].{exc.field}: {exc.reason}") from None
    return out


def plan_changes(plan: Plan, snap: Snapshot, rules: Mapping[int, Rules]) -> list[VaultChange]:
    """A decision plan as netting input: per vault, exact lending moves, interest and the buffer move."""
    changes = []
    symbols = [a.symbol for a in snap.assets]
    for vp in plan.vaults:
        mandate = {vp.denomination} | {symbols.index(s) for s in rules[vp.vault_id].hedged_assets if s in symbols}
        mandate |= {i for i, a in enumerate(snap.assets) if a.is_stable}
        mandate |= {i for i in range(len(symbols)) if vp.debt[i] or vp.collateral[i] or vp.interest[i]}
        changes.append(
            VaultChange(
                vault_id=vp.vault_id,
                denomination=vp.denomination,
                mandate=frozenset(mandate),
                glp=vp.glp,
                collateral=vp.collateral,
                debt=tuple(d - i for d, i in zip(vp.debt, vp.interest, strict=True)),
                interest=vp.interest,
                buffer=vp.cash[vp.denomination],
            )
        )
    return changes


@dataclass
class Switches:
    """Safety switches read at every tick."""

    cfg: KeeperSettings

    @property
    def pause_file(self) -> Path:
        return self.cfg.safety.pause_file or (self.cfg.state_dir / "PAUSE")

    def paused(self) -> str | None:
        if self.cfg.safety.paused:
            return "config safety.paused"
        if os.environ.get("KEEPER_PAUSED", "").strip().lower() in ("1", "true", "yes"):
            return "environment KEEPER_PAUSED"
        if self.pause_file.exists():
            return f"pause file {self.pause_file}"
        return None


class KeeperApp:
    """One keeper process. `run()` blocks until SIGTERM/SIGINT and returns the exit code."""

    def __init__(self, cfg: KeeperSettings, *, holder: str | None = None) -> None:
        self.cfg = cfg
        self.metrics = Metrics()
        self.health = Health(cfg.schedule.heartbeat_max_age_seconds)
        self.switches = Switches(cfg)
        self.endpoints = Endpoints(
            list(cfg.chain.rpc_urls), cfg.chain.request_timeout_seconds, self.metrics,
            max_lag=cfg.chain.max_head_lag_blocks, cooldown=cfg.chain.failover_cooldown_seconds,
            probe_seconds=cfg.chain.head_probe_seconds, on_demote=self._demote_send_endpoint,
        )
        c = cfg.contracts
        self.addresses = Addresses(
            c.vault_manager, c.multicall, c.gmx_vault, c.glp_manager, c.reward_router, c.pool, c.glp
        )
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self.store: Store = self._open_store()
        self.lease: Lease = self._lease()
        self.leadership = Leadership(False, "", 0, "not yet")
        self._leader_lock = threading.RLock()  # the renewal thread and the worker both change leadership
        self._lease_deadline = 0.0  # monotonic; past it this process does not trust its leadership (no renewal)
        self._reconcile_due = False  # set on gaining leadership: reconcile the shared journal before ticking
        self._installed_epoch: int | None = None  # the fencing epoch this process last installed in the journal
        self._standby_logged: str | None = None
        self._renewer: Renewer | None = None
        self.signer: Any = None
        self.pipeline: Any = None
        self._send_chain: Any = None  # the pipeline's RpcChain (its endpoint pool), once started
        self.readers: dict[int, SnapshotReader] = {}
        self.rules: dict[int, Rules] = {}
        self.oracle_rules = {
            s: OracleRules(a.heartbeat_seconds, a.max_divergence_bps) for s, a in cfg.oracle.assets.items()
        }
        self.oracle_default = OracleRules(cfg.oracle.default.heartbeat_seconds, cfg.oracle.default.max_divergence_bps)
        self._vm_abi = load_abi("VaultManager")
        self._selectors = self._keeper_selectors()
        self._rebalanced_topic = "0x" + Web3.keccak(text="Rebalanced(uint256,uint8,uint256)").hex().removeprefix("0x")
        self._last_snapshot: Snapshot | None = None
        self._submitted: list[int] = []  # chain times of submissions (rate limit)
        self._last_pause: str | None = None
        self.lyf = LyfJob(self) if cfg.lyf.positions else None
        self.metrics.dry_run.set(1 if cfg.safety.dry_run else 0)
        self.metrics.signer_balance_min.set(cfg.safety.min_signer_balance_wei)

    # --- set-up --------------------------------------------------------------------------------------------------
    def _open_store(self) -> Store:
        url = self.cfg.store.database_url
        if url is not None:
            return open_store(url.get_secret_value())
        self.cfg.state_dir.mkdir(parents=True, exist_ok=True)
        return open_store(self.cfg.state_dir / "journal.sqlite3")

    def _lease(self) -> Lease:
        url = self.cfg.store.database_url
        if url is None:
            return FileLease(self.cfg.state_dir, self.holder)
        lease = PostgresLease(
            url.get_secret_value(), self.cfg.store.lease_name, self.holder, self.cfg.store.lease_seconds
        )
        lease.ensure_schema()
        if isinstance(self.store, PostgresStore):
            # every journal write that leads to a transaction checks this holder's lease in its own transaction
            self.store.bind_lease(lease.name, self.holder, lease.ttl_seconds)
        return lease

    def _signer(self) -> Any:
        from keeper.execute.signer import KeystoreSigner, RawKeySigner, RemoteSigner

        s = self.cfg.signer
        if s.kind == "none" or self.cfg.safety.dry_run:
            return None
        if s.kind == "keystore":
            if s.keystore_file is None or s.password_file is None:
                raise ConfigError("signer: kind 'keystore' needs keystore_file and password_file")
            return KeystoreSigner.from_files(s.keystore_file, s.password_file)
        if s.kind == "remote":
            if s.remote_url is None or s.address is None:
                raise ConfigError("signer: kind 'remote' needs remote_url and address")
            return RemoteSigner(s.remote_url, s.address)
        if s.key is not None:
            return RawKeySigner.from_secret(s.key.get_secret_value(), "config:signer.key")
        if s.key_file is not None:
            return RawKeySigner.from_file(s.key_file)
        raise ConfigError("signer: kind 'raw' needs key (KEEPER_SIGNER__KEY or the secrets dir) or key_file")

    def _pipeline(self) -> Any:
        from keeper.execute.chain import Chain, connect
        from keeper.execute.gas import GasPolicy
        from keeper.execute.metrics import ExecutionMetrics, prometheus_hook
        from keeper.execute.pipeline import Pipeline, PipelineConfig

        g = self.cfg.gas
        chain = connect(
            self.cfg.chain.rpc_urls,
            self.cfg.chain.chain_id,
            private_url=self.cfg.chain.send_url,
            timeout=self.cfg.chain.request_timeout_seconds,
            max_head_lag=self.cfg.chain.max_head_lag_blocks,
        )
        self._send_chain = chain
        policy = GasPolicy(
            max_fee_cap=g.max_fee_per_gas_wei,
            max_tx_fee=g.max_fee_per_tx_wei,
            priority_ceiling=max(g.max_priority_fee_per_gas_wei, 1),
        )
        # with the PostgreSQL lease, every broadcast first proves this process still leads (keeper.ha.fence)
        sending: Chain = FencedChain(chain, self._check_fence) if isinstance(self.lease, PostgresLease) else chain
        config = PipelineConfig(
            chain_id=self.cfg.chain.chain_id,
            confirmations=self.cfg.chain.confirmations,
            stuck_blocks=g.replace_after_blocks,
            gas=policy,
            private_fallback_blocks=self.cfg.chain.send_fallback_blocks,
            epoch=self._standby_epoch(),  # set by _refresh_leadership when the lease is held
            force_legacy=g.legacy,
        )
        metrics = ExecutionMetrics(hook=prometheus_hook(self.metrics.registry))
        return Pipeline(
            self.store,
            sending,
            self.signer,
            config,
            metrics=metrics,
            still_wanted=self._still_wanted,
            alert=self._alert,
        )

    def _alert(self, kind: str, message: str) -> None:
        if kind == "fee_cap":
            self.metrics.fee_cap_waits.inc()
            self.metrics.fee_cap_waiting.set(1)
        _log.warning("alert", kind=kind, message=message)

    def _still_wanted(self, record: IntentRecord) -> bool:
        """Before a replacement: the intent is still wanted unless the manager paused or a switch is on."""
        snap = self._last_snapshot
        return self.switches.paused() is None and not (snap is not None and snap.manager.paused)

    # --- reading -------------------------------------------------------------------------------------------------
    def read(self, block: int) -> Snapshot:
        for _ in range(len(self.endpoints.clients)):
            index = self.endpoints.current
            reader = self.readers.get(index)
            if reader is None:
                reader = SnapshotReader(self.endpoints.w3(), self.addresses, self._keeper_address())
                self.readers[index] = reader
            started = time.perf_counter()
            self.metrics.rpc_requests.labels(endpoint=self.endpoints.name).inc()
            try:
                snap = reader.read(block)
            except ReadError as exc:
                self.endpoints.failed(f"snapshot read at block {block}: {exc}")
                continue
            self.metrics.rpc_latency.labels(endpoint=self.endpoints.name).observe(time.perf_counter() - started)
            return snap
        raise ReadError(f"every endpoint failed to read block {block}")

    def head(self) -> int:
        """The head from the preferred endpoint; a failing endpoint, or one whose head is more than
        chain.max_head_lag_blocks behind the others' (lagging, or answering from another node), fails over."""
        self.endpoints.prefer()
        for _ in range(len(self.endpoints.clients)):
            self.metrics.rpc_requests.labels(endpoint=self.endpoints.name).inc()
            try:
                number = int(self.endpoints.w3().eth.block_number)
            except Exception as exc:
                self.endpoints.failed(f"eth_blockNumber: {exc.__class__.__name__}: {exc}")
                continue
            problem = self.endpoints.check_head(number)
            if problem is None:
                return number
            self.endpoints.failed(problem)
        self.health.set_check("chain", False, "every endpoint failed")
        raise ReadError("every endpoint failed to answer eth_blockNumber")

    def _demote_send_endpoint(self, index: int, seconds: float) -> None:
        """The read path saw endpoint `index` fail: the send path avoids it for the same cooldown."""
        if self._send_chain is not None:
            self._send_chain.pool.demote(index, seconds)

    def _keeper_address(self) -> str:
        return str(self.signer.address) if self.signer is not None else self.cfg.keeper_address()

    # --- memory --------------------------------------------------------------------------------------------------
    def load_memory(self) -> Memory:
        text = self.store.get_state(MEMORY_KEY)
        if text is None:
            return Memory()
        try:
            return memory_from_json_dict(json.loads(text))
        except (InputError, ValueError) as exc:
            # never silently start from zero: a corrupt memory would reset the OI timer
            raise ConfigError(f"journal: stored decision memory is unreadable ({exc}); inspect {MEMORY_KEY}") from None

    def save_memory(self, memory: Memory) -> None:
        self.store.put_state(MEMORY_KEY, json.dumps(_memory_json(memory), sort_keys=True))

    # --- the tick ------------------------------------------------------------------------------------------------
    def on_block(self, block: int) -> None:
        with log.bound(block=block):
            try:
                self._tick(block)
                if self.lyf is not None and self.switches.paused() is None:
                    self.lyf.tick(block)
            except ReadError as exc:  # retryable: the next block tries again (no traceback: not a bug)
                self.health.set_check("chain", False, f"read failed: {exc}"[:200])
                _log.warning("snapshot read failed; retrying next block", error=str(exc)[:300])

    def _tick(self, block: int) -> None:
        # leadership is refreshed by its own thread (Renewer), not here: a block-less chain or a slow tick must
        # neither let the lease lapse nor delay a takeover
        pause = self.switches.paused()
        self.metrics.paused.set(1 if pause else 0)
        if pause:
            if pause != self._last_pause:
                _log.warning("paused: no new decisions", reason=pause)
            self._last_pause = pause
            return
        self._last_pause = None
        snap = replace(self.read(block), memory=self.load_memory())
        self._last_snapshot = snap
        self.health.set_check("chain", True, f"block {block}")
        self._export_snapshot(snap)
        verdicts = oracle_check(snap, self.oracle_rules, self.oracle_default)
        refused = self._export_oracle(verdicts)
        if snap.glp.aum_min == 0 or any("non_positive" in verdicts[s].reasons for s in refused):
            # GLP cannot be priced (a feed is zero or negative): every vault depends on it, so no decision
            _log.warning("oracle guard: GLP cannot be priced; no decision this block", refused=sorted(refused))
            return
        if not self.rules or set(self.rules) != {b.vault_id for b in snap.books}:
            self.rules = rules_by_vault(self.cfg, [b.vault_id for b in snap.books])
        decision = decide(snap, self.rules, snap.memory)
        leading = self._leading()
        if leading:  # the journal is shared: a standby decides (for its metrics) but never writes
            self.save_memory(decision.memory)
        self._export_decision(decision)
        if decision.plan is None:
            return
        if not leading:
            _log.info("standby: plan not submitted", leader=self.leadership.holder)
            return
        if snap.manager.paused:
            _log.warning("VaultManager is paused on chain: no trade")
            return
        touched = {
            s
            for vp in decision.plan.vaults
            for i, s in enumerate(decision.plan.assets)
            if vp.debt[i] or vp.collateral[i] or vp.cash[i]
        }
        if refused & (touched | {a.symbol for a in snap.assets if not a.is_stable}):
            _log.warning("oracle guard: no trade", refused=sorted(refused))
            return
        # One rebalance at a time until it is mined: the next snapshot then already contains it. Mined but
        # not yet final is fine: the next intent takes the next nonce, so even after a reorg the chain
        # executes them in the order they were planned.
        if self._rebalance_in_flight():
            _log.info("a rebalance is in flight; waiting for it")
            return
        # A health-factor plan is never held back by the rate limit: liquidation is the larger loss.
        urgent = any(r.trigger == "health_factor" and r.fired for r in decision.triggers)
        if self._rate_limited(snap.block_timestamp, urgent=urgent):
            return
        try:
            self._submit(snap, decision, block)
        except FencingError as exc:  # the journal refused: another replica leads
            self._step_down(f"fenced: {exc}")

    def _rebalance_in_flight(self) -> bool:
        """A rebalance (vaults or LYF) signed but not yet mined: the next one waits for it."""
        unmined = (State.PLANNED, State.SIMULATED, State.SIGNED, State.BROADCAST)
        return self.pipeline is not None and any(
            r.intent.kind == "call" and r.state in unmined for r in self.store.in_flight(self._keeper_address())
        )

    def _rate_limited(self, now: int, *, urgent: bool) -> bool:
        """safety.max_rebalances_per_hour on chain time (the devnet compresses time; on a live chain it is
        wall time), shared by every strategy; an urgent rebalance is never held back."""
        self._submitted = [t for t in self._submitted if now - t < 3600]
        if len(self._submitted) >= self.cfg.safety.max_rebalances_per_hour and not urgent:
            _log.warning("rate limit: max rebalances per hour reached", limit=self.cfg.safety.max_rebalances_per_hour)
            return True
        return False

    def build_order(self, snap: Snapshot, plan: Plan) -> NetPlan:
        changes = plan_changes(plan, snap, self.rules)
        process = [vp.vault_id for vp in plan.vaults if vp.process]
        return net_changes(
            changes,
            oracle_from_snapshot(snap),
            slippage_bps=self.cfg.slippage_bps,
            max_slippage_bps=100,
            deadline=snap.block_timestamp + self.cfg.deadline_seconds,
            flags=plan.flags,
            process_vaults=process,
            books={b.vault_id: b for b in snap.books},
        )

    def calldata(self, net: NetPlan) -> bytes:
        contract = Web3().eth.contract(abi=self._vm_abi)
        data: str = contract.encode_abi("rebalance", [order_abi(net.order)])
        return bytes.fromhex(data.removeprefix("0x"))

    def _allowed(self, to: str, data: bytes) -> bool:
        """The allow-list, checked before signing: the VaultManager and only its keeper functions, or a
        configured LYF position and only its `rebalance` (safety.allowed_selectors narrows both)."""
        if to.lower() == self.addresses.vault_manager.lower():
            return data[:4].hex() in self._selectors
        configured = {x.lower().removeprefix("0x") for x in self.cfg.safety.allowed_selectors}
        return self.lyf is not None and self.lyf.allows(to, data, configured)

    def _keeper_selectors(self) -> set[str]:
        configured = {s.lower().removeprefix("0x") for s in self.cfg.safety.allowed_selectors}
        if configured:
            return configured
        from eth_utils.abi import function_abi_to_4byte_selector

        return {
            function_abi_to_4byte_selector(f).hex()  # type: ignore[arg-type]
            for f in self._vm_abi
            if f.get("type") == "function" and f["name"] in ("rebalance", "harvest", "processBuffers")
        }

    def _submit(self, snap: Snapshot, decision: Decision, block: int) -> None:
        plan = decision.plan
        assert plan is not None
        try:
            net = self.build_order(snap, plan)
        except KeeperError as exc:
            self.metrics.rebalances.labels(result="not_nettable").inc()
            _log.warning("netting refused the plan", error=str(exc))
            return
        notional = compare_notional(net).netted_usd30 // USD30
        if notional > self.cfg.safety.max_notional_usd_per_rebalance:
            self.metrics.rebalances.labels(result="over_notional_cap").inc()
            _log.warning(
                "notional cap: plan refused",
                notional_usd=notional,
                cap_usd=self.cfg.safety.max_notional_usd_per_rebalance,
            )
            return
        data = self.calldata(net)
        to = self.addresses.vault_manager
        if not self._allowed(to, data):
            self.metrics.rebalances.labels(result="not_allowed").inc()
            _log.error("allow-list refused the transaction", to=to, selector="0x" + data[:4].hex())
            return
        if self.cfg.safety.dry_run or self.signer is None:
            ok = self._dry_run(to, data, block)
            self.metrics.rebalances.labels(result="dry_run_ok" if ok else "dry_run_revert").inc()
            return
        plan_id = f"{to}:{snap.manager.rebalance_count}"
        intent = Intent(
            idempotency_key=idempotency_key(plan_id, to, data, 0),
            to=to,
            data=data,
            deadline_block=block + max(10, self.cfg.deadline_seconds // 2),
            expected_event=ExpectedEvent(self._rebalanced_topic, to),
            urgency="high" if any("health factor" in r for r in plan.reasons) else "normal",
        )
        record = self.pipeline.submit(intent, head=block)
        self._submitted.append(snap.block_timestamp)
        pending = {
            "plan": plan_to_json_dict(plan),
            "memory_after": _memory_json(decision.memory_after_execution),
            "block": snap.block_number,
        }
        self.store.put_state(f"{PENDING}:{record.id}", json.dumps(pending, sort_keys=True))
        for name, _count in _fired(decision):  # one count per rebalance and trigger kind
            self.metrics.triggers.labels(trigger=name).inc()
        _log.info(
            "rebalance submitted",
            fired=[r.reason() for r in decision.triggers if r.fired][:8],
            intent_id=record.id,
            vaults=[vp.vault_id for vp in plan.vaults],
            reasons=list(plan.reasons)[:6],
            notional_usd=notional,
        )

    def _dry_run(self, to: str, data: bytes, block: int) -> bool:
        w3 = self.endpoints.w3()
        params = [{"from": self._keeper_address(), "to": to, "data": "0x" + data.hex()}, hex(block)]
        answer = w3.provider.make_request(RPCEndpoint("eth_call"), params)
        ok = "error" not in answer
        _log.info("dry run: simulated, not signed", ok=ok, error=answer.get("error"))
        return ok

    # --- in flight -----------------------------------------------------------------------------------------------
    def on_in_flight(self, head: int) -> None:
        if self.pipeline is None:
            return
        if not self._leading():
            return
        try:
            if self._reconcile_due:  # just became the leader: align the shared journal with the chain first
                plan = self.pipeline.reconcile()
                self._reconcile_due = False
                _log.info("journal reconciled with the chain", plan=str(plan)[:300])
            in_flight = self.pipeline.tick()
        except FencingError as exc:  # the journal or the pre-broadcast check refused: another replica leads
            self._step_down(f"fenced: {exc}")
            return
        except KeeperError as exc:
            _log.warning("pipeline tick failed", error=str(exc))
            return
        self.metrics.pending_txs.set(len(in_flight))
        if not in_flight:
            self.metrics.fee_cap_waiting.set(0)
        self._account(head)
        if self.lyf is not None:
            self.lyf.account(head)

    def _account(self, head: int) -> None:
        """Account every finished rebalance once: attribution record, fee ledger, memory, metrics.

        Each write is idempotent (records are append-once, the ledger remembers the last rebalance it
        applied) and the intent is marked accounted last, so a crash in between repeats nothing twice.
        """
        for record, pending_text in unaccounted(self.store, self._keeper_address(), PENDING, ACCOUNTED):
            if record.outcome != "success":
                self.metrics.rebalances.labels(result=record.outcome or record.state.value).inc()
                _log.warning(
                    "rebalance did not take effect",
                    intent_id=record.id,
                    state=record.state.value,
                    outcome=record.outcome,
                    error=record.error,
                )
                self.store.put_state(f"{ACCOUNTED}:{record.id}", record.state.value)
                continue
            pending = json.loads(pending_text)
            try:
                attribution, snap = self._attribute(record, pending)
            except Exception as exc:  # accounting must never stop the keeper; the log says what is missing
                _log.error("attribution failed", intent_id=record.id, error=f"{exc.__class__.__name__}: {exc}")
                attribution, snap = None, None
            if attribution is not None and snap is not None:
                self.store.add_record(
                    ATTRIBUTION,
                    f"{attribution.rebalance_id:010d}",
                    json.dumps(attribution.to_json_dict(), sort_keys=True),
                )
                self._charge_ledger(snap, attribution)
                for cost in attribution.vaults:
                    self.metrics.gas_spent.labels(vault=str(cost.vault_id)).inc(cost.gas_wei)
                    for asset, fee in enumerate(cost.fee_tokens):
                        if fee:
                            symbol = pending["plan"]["assets"][asset]
                            self.metrics.fees_paid.labels(vault=str(cost.vault_id), asset=symbol).inc(fee)
            self.save_memory(memory_from_json_dict(pending["memory_after"]))
            self.metrics.rebalances.labels(result="success").inc()
            self.store.put_state(f"{ACCOUNTED}:{record.id}", "success")

    def load_ledger(self) -> Ledger:
        text = self.store.get_state(LEDGER_KEY)
        return Ledger() if text is None else ledger_from_json_dict(json.loads(text)["ledger"])

    def _charge_ledger(self, snap: Snapshot, attribution: AttributionRecord) -> None:
        """The fee ledger (pool "account", holders = vaults, positions = equity in micro-USD at the plan's
        snapshot): the rebalance's whole cost (fees + gas, micro-USD, rounded down) is borne by what was
        held at that rebalance. Applied once per rebalance id; survives restarts in the journal."""
        text = self.store.get_state(LEDGER_KEY)
        applied = -1 if text is None else int(json.loads(text)["last_rebalance_id"])
        if attribution.rebalance_id <= applied:
            return
        ledger = self.load_ledger()
        pool = ledger.pool(LEDGER_POOL)
        for book in snap.books:
            holder = pool.holder(str(book.vault_id))
            target = book.equity_usd // MICRO_USD
            ledger, _ = change_position(
                ledger, LEDGER_POOL, str(book.vault_id), target - (holder.position if holder else 0)
            )
        eth = next((a for a in snap.assets if a.symbol == "WETH"), None)
        gas_usd30 = attribution.gas_wei * feed_price_usd30(eth) // 10**18 if eth is not None else 0
        cost = (sum(v.fee_usd30 for v in attribution.vaults) + gas_usd30) // MICRO_USD
        if ledger.pool(LEDGER_POOL).total_position > 0:
            ledger, _ = record_rebalance(ledger, LEDGER_POOL, cost)
        document = {"last_rebalance_id": attribution.rebalance_id, "ledger": ledger_to_json_dict(ledger)}
        self.store.put_state(LEDGER_KEY, json.dumps(document, sort_keys=True))

    def _attribute(self, record: IntentRecord, pending: Mapping[str, Any]) -> tuple[AttributionRecord, Snapshot]:
        w3 = self.endpoints.w3()
        assert record.mined_tx_hash is not None
        receipt = w3.eth.get_transaction_receipt(record.mined_tx_hash)  # type: ignore[arg-type]
        snap = replace(self.read(int(pending["block"])), memory=Memory())
        plan = plan_from_json_dict(pending["plan"])
        net = self.build_order(snap, plan)
        contract = w3.eth.contract(address=Web3.to_checksum_address(self.addresses.vault_manager), abi=self._vm_abi)
        traded = contract.events.GlpTraded().process_receipt(receipt, errors=DISCARD)
        rebalanced = contract.events.Rebalanced().process_receipt(receipt, errors=DISCARD)
        tokens = [a.address.lower() for a in snap.assets]
        legs = tuple(
            ExecutedLeg(
                asset=tokens.index(str(e["args"]["token"]).lower()),
                glp=abs(int(e["args"]["glpDelta"])),
                token_amount=int(e["args"]["tokenAmount"]),
                fee_tokens=int(e["args"]["feeTokens"]),
            )
            for e in traded
        )
        execution = Execution(
            legs=legs, gas_used=int(receipt["gasUsed"]), effective_gas_price=int(receipt["effectiveGasPrice"])
        )
        rebalance_id = int(rebalanced[0]["args"]["rebalanceId"]) if rebalanced else record.id
        mined_at = int(w3.eth.get_block(int(receipt["blockNumber"]))["timestamp"])
        for vp in plan.vaults:
            self.metrics.last_rebalance.labels(vault=str(vp.vault_id)).set(mined_at)
        return attribute(net, execution, rebalance_id), snap

    # --- exports -------------------------------------------------------------------------------------------------
    def _export_snapshot(self, snap: Snapshot) -> None:
        m = self.metrics
        m.signer_balance.set(snap.keeper_balance_wei)
        hf = snap.lending.health_factor
        m.health_factor.set(float(hf) / 1e18 if hf < 2**255 else float("inf"))  # display gauge only
        for book in snap.books:
            m.vault_equity.labels(vault=str(book.vault_id)).set(book.equity_usd / USD30)
        if snap.keeper_balance_wei < self.cfg.safety.min_signer_balance_wei:
            _log.warning(
                "signer balance below minimum",
                balance_wei=snap.keeper_balance_wei,
                minimum_wei=self.cfg.safety.min_signer_balance_wei,
            )

    def _export_oracle(self, verdicts: Mapping[str, Verdict]) -> set[str]:
        refused = set()
        for symbol, verdict in verdicts.items():
            self.metrics.oracle_tripped.labels(asset=symbol).set(0 if verdict.ok else 1)
            if not verdict.ok:
                refused.add(symbol)
                for reason in verdict.reasons:
                    self.metrics.oracle_trips.labels(asset=symbol, reason=reason).inc()
                _log.warning("oracle guard tripped", asset=symbol, reasons=list(verdict.reasons))
        return refused

    def _export_decision(self, decision: Decision) -> None:
        m = self.metrics
        halted: set[str] = set()
        for r in decision.triggers:
            parts = r.scope.split(":")
            value = _number(r.value)
            in_bps = r.unit.startswith("bps")
            if r.trigger == "delta_drift" and len(parts) == 3 and value is not None:
                m.delta_drift.labels(vault=parts[1], asset=parts[2]).set(value / 10_000 if in_bps else value)
            elif r.trigger == "net_oi" and len(parts) == 2 and value is not None:
                m.oi_drift.labels(asset=parts[1]).set(value / 10_000 if in_bps else value)
                age = (
                    0
                    if r.since is None or self._last_snapshot is None
                    else self._last_snapshot.block_timestamp - r.since
                )
                m.oi_drift_age.labels(asset=parts[1]).set(max(age, 0))
            elif r.trigger == "hedge_pnl" and len(parts) == 2 and value is not None:
                m.hedge_pnl.labels(vault=parts[1]).set(value / 10_000 if in_bps else value)
        for h in decision.halts:
            parts = h.scope.split(":")
            halted.add(parts[1] if parts[0] == "vault" and len(parts) > 1 else "all")
            _log.warning("halt: no trade", scope=h.scope, reason=h.reason(), detail=h.detail)
        for vault_id in self.rules:
            m.halted.labels(vault=str(vault_id)).set(1 if {str(vault_id), "all"} & halted else 0)

    # --- leadership ----------------------------------------------------------------------------------------------
    def _refresh_leadership(self) -> None:
        """Take or renew the lease and publish the result (the Renewer thread calls this every interval).

        On a gain the fencing epoch is installed in the journal before the worker may act on it; any failure
        (database down, fenced) means standby: a hiccup must never let two leaders sign.
        """
        with self._leader_lock:
            started = time.monotonic()
            epoch: int | None = None
            try:
                leadership = self.lease.acquire()
                if leadership.held:
                    epoch = self._fence_epoch(leadership.epoch)
            except Exception as exc:
                leadership = Leadership(False, "?", 0, f"lease check failed: {exc.__class__.__name__}: {exc}"[:300])
            if leadership.held:
                ttl = self.lease.ttl_seconds if isinstance(self.lease, PostgresLease) else float("inf")
                # the database's expiry is `ttl` after it ran the statement, i.e. after `started`: trusting
                # 90% of it locally stops this process on its own after a pause, before any fence is needed
                self._lease_deadline = started + 0.9 * ttl
            self._publish(leadership, epoch)

    def _publish(self, leadership: Leadership, epoch: int | None) -> None:
        before = self.leadership.held
        held = leadership.held
        if self.pipeline is not None:
            self.pipeline.config = replace(self.pipeline.config, epoch=epoch if held else self._standby_epoch())
        if held and not before:
            self._reconcile_due = True
        if not held:
            self._lease_deadline = 0.0
            self._installed_epoch = None
        previous, self.leadership = self.leadership, leadership
        if held != before:
            self.metrics.leadership_changes.inc()
            _log.warning("leadership changed", leader=held, holder=leadership.holder, detail=leadership.detail)
        elif held and leadership.epoch != previous.epoch:
            # our own lease had lapsed (a pause, a slow database) and nobody took it: a new term, a new epoch
            _log.warning("lease lapsed and re-taken: new epoch", epoch=leadership.epoch, previous=previous.epoch)
        if held:
            self._standby_logged = None
        elif self._standby_logged != leadership.holder:
            self._standby_logged = leadership.holder
            _log.warning("standby: not the leader, not sending", leader=leadership.holder, reason=leadership.detail)
        self.metrics.leader.set(1 if held else 0)
        self.health.set_check("leader", held, leadership.detail)
        self.metrics.ready.set(1 if self.health.ready()[0] else 0)

    def _step_down(self, reason: str) -> None:
        """The journal refused a write or a broadcast: stop acting as leader at once (the Renewer re-checks)."""
        with self._leader_lock:
            self._publish(Leadership(False, self.leadership.holder, 0, reason[:300]), None)

    def _leading(self) -> bool:
        """Leader, and the lease was renewed recently enough to be trusted (false right after a long pause)."""
        return self.leadership.held and time.monotonic() < self._lease_deadline

    def _standby_epoch(self) -> int | None:
        """The pipeline's epoch while not leading: 0 (never an epoch) under the lease, so the journal refuses."""
        return 0 if isinstance(self.lease, PostgresLease) else None

    def _fence_epoch(self, epoch: int) -> int | None:
        """Install the lease epoch as the sender's fencing token (fenced itself: only a live holder may)."""
        if isinstance(self.lease, PostgresLease):
            if self._installed_epoch != epoch:  # once per term: no row lock on every renewal
                self.store.set_epoch(self._keeper_address(), epoch)
                self._installed_epoch = epoch
            return epoch
        return None

    def _check_fence(self) -> None:
        """Immediately before every broadcast: still leading, and the journal agrees (epoch + unexpired lease)."""
        epoch = self.pipeline.config.epoch if self.pipeline is not None else None
        if not self._leading() or not epoch:
            raise FencingError("not the leader (or the lease was not renewed in time); not sending")
        if isinstance(self.store, PostgresStore):
            self.store.check_fence(self._keeper_address(), epoch)

    # --- lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.endpoints.verify(self.cfg.chain.chain_id)
        self.signer = self._signer()
        self.health.set_check("signer", True, "dry run" if self.signer is None else "ready")
        if self.signer is not None:
            self.pipeline = self._pipeline()
        self._refresh_leadership()
        if self.pipeline is not None and self._leading():
            try:
                plan = self.pipeline.reconcile()
                self._reconcile_due = False
                _log.info("journal reconciled with the chain", plan=str(plan)[:300])
            except FencingError as exc:
                self._step_down(f"fenced: {exc}")
            except KeeperError as exc:  # the first in-flight tick retries
                _log.warning("reconcile failed; retrying on the next tick", error=str(exc)[:300])

    def run(self) -> int:
        s = self.cfg.schedule
        try:
            server = serve(self.metrics.registry, self.health, self.cfg.metrics.host, self.cfg.metrics.port)
        except OSError as exc:
            raise ConfigError(
                f"metrics.port: cannot listen on {self.cfg.metrics.host}:{self.cfg.metrics.port} ({exc.strerror})"
            ) from None
        _log.info(
            "keeper starting",
            metrics=f"http://{self.cfg.metrics.host}:{server.server_address[1]}",
            dry_run=self.cfg.safety.dry_run,
            holder=self.holder,
        )
        try:
            self.start()
            lease_seconds = self.lease.ttl_seconds if isinstance(self.lease, PostgresLease) else None
            self._renewer = Renewer(self._refresh_leadership, renew_interval(lease_seconds, s.poll_seconds))
            self._renewer.start()
            self.endpoints.start_probe(self.cfg.chain.chain_id)
            daemon = Daemon(
                head=self.head,
                on_block=self.on_block,
                on_in_flight=self.on_in_flight,
                health=self.health,
                metrics=self.metrics,
                timing=Timing(
                    poll_seconds=s.poll_seconds, in_flight_seconds=s.in_flight_seconds, grace_seconds=s.grace_seconds
                ),
            )
            clean = daemon.run_until_signal()
            return 0 if clean else 1
        finally:
            if self._renewer is not None:
                self._renewer.stop()
            self.endpoints.stop_probe()
            try:
                self.lease.release()
            except Exception as exc:
                _log.warning("lease release failed", error=str(exc))
            server.shutdown()
            server.server_close()
            self.store.close()
            _log.info("keeper stopped")


def _memory_json(memory: Memory) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(memory)


def _fired(decision: Decision) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for result in decision.triggers:
        if result.fired and result.action != "none":
            counts[result.trigger] = counts.get(result.trigger, 0) + 1
    return sorted(counts.items())


def _number(text: str) -> float | None:
    """A trigger's display value as a gauge sample (metrics only; never used for money)."""
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def attribution_records(store: Store) -> list[AttributionRecord]:
    return [record_from_json_dict(json.loads(v)) for _, v in store.records(ATTRIBUTION)]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]
