"""`keeper run`: the product. Wires read → decide → net → execute → account on every new block.

Owns the per-block tick (snapshot, oracle guard, decision, safety switches, netting, submission), the
in-flight job (pipeline tick, accounting of executed rebalances) and start-up (config → endpoints,
signer, journal, leadership, metrics). Decisions are pure calls into keeper.decide / keeper.net /
keeper.account; this module only moves their inputs and outputs between the chain, the journal and
the metrics. Dry-run decides, nets and simulates but never signs.

* Prices: decide and netting see the oracle guard's median (`keeper.chain.oracle.priced`), not the raw
  Chainlink answer; a refused asset blocks every GLP-dependent plan (`keeper.chain.oracle.blocking`).
* Still wanted (asked by the pipeline before a first send and before every replacement of a vault
  rebalance): a fresh snapshot at the in-flight head (the pending rebalance is not mined, so it is the
  pre-state), the oracle guard and `decide` — wanted iff a rebalance is still planned and not blocked.
  A read failure keeps the intent: a transient RPC error must not cancel a wanted rebalance.
* Shutdown: SIGTERM/SIGINT handlers are installed first thing in `run()`, so a signal during start-up
  (endpoint checks, reconcile) is honoured too; the process exits within `grace_seconds +
  FORCE_MARGIN_SECONDS` (keeper.daemon.schedule), 0 when no journal section was open.
* Logs: every line of a tick carries `block`; per-vault lines `vault`; accounting lines `intent_id`.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.logs import DISCARD
from web3.types import RPCEndpoint

from keeper import log
from keeper.account import Ledger, attribute, record_from_json_dict
from keeper.account.attribution import AttributionRecord
from keeper.chain.artifacts import abi as load_abi
from keeper.chain.oracle import OracleRules, Verdict, blocking, priced
from keeper.chain.oracle import check as oracle_check
from keeper.chain.reader import Addresses, SnapshotReader
from keeper.config import KeeperSettings
from keeper.daemon.endpoints import Endpoints
from keeper.daemon.fee_ledger import LEDGER_KEY as _LEDGER_KEY
from keeper.daemon.fee_ledger import FeeLedger
from keeper.daemon.http import Health, serve
from keeper.daemon.journal import FINISHED, unaccounted
from keeper.daemon.lyf_job import ACCOUNTED as LYF_ACCOUNTED
from keeper.daemon.lyf_job import PENDING as LYF_PENDING
from keeper.daemon.lyf_job import LyfJob
from keeper.daemon.metrics import Metrics
from keeper.daemon.schedule import Daemon, Shutdown, Timing
from keeper.decide import Decision, Plan, Rules, decide, plan_from_json_dict, plan_to_json_dict
from keeper.errors import ConfigError, InputError, KeeperError, ReadError
from keeper.ha.fence import FencedChain
from keeper.ha.lease import FileLease, Leadership, Lease, PostgresLease, Renewer, renew_interval
from keeper.net import (
    ExecutedLeg,
    Execution,
    FillShortOfBound,
    NetPlan,
    VaultChange,
    books_cash,
    compare_notional,
    gmx_quote,
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
LEDGER_KEY = _LEDGER_KEY  # the fee ledger document (`keeper fees` reads it)
ACCOUNTED = "accounted"
ATTRIBUTION = "attribution"
PENDING = "pending"  # intent id → {"plan": ..., "memory_after": ...}
USD30 = 10**30
SIGNER_LOW_REMINDER_SECONDS = 600.0  # while the signer balance stays low: one warning per 10 minutes


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


class Reminder:
    """A condition worth a log line when it starts, when it ends, and at most every `every` seconds while it
    lasts (the gauge carries the per-block value): `update(active)` says which line to write, if any."""

    def __init__(self, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self._clock = clock
        self._since: float | None = None  # when the last line for the active condition was written

    def update(self, active: bool) -> str | None:
        now = self._clock()
        if not active:
            was, self._since = self._since, None
            return None if was is None else "cleared"
        if self._since is None:
            self._since = now
            return "raised"
        if now - self._since >= self.every:
            self._since = now
            return "again"
        return None


@dataclass(frozen=True)
class Evaluation:
    """One tick's decision inputs and outputs: the priced snapshot decide and netting saw, the oracle
    verdicts, the decision (None: GLP cannot be priced) and the refused assets that block its plan."""

    snap: Snapshot
    verdicts: Mapping[str, Verdict]
    refused: frozenset[str]
    decision: Decision | None
    blocked: frozenset[str] = field(default_factory=frozenset)

    @property
    def plan(self) -> Plan | None:
        return None if self.decision is None else self.decision.plan


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
        self._max_slippage: dict[int, int] = {}  # block → VaultManager.maxSlippageBps read at it
        self._selectors = self._keeper_selectors()
        self._rebalanced_topic = "0x" + Web3.keccak(text="Rebalanced(uint256,uint8,uint256)").hex().removeprefix("0x")
        self._last_snapshot: Snapshot | None = None
        self._submitted: list[int] = []  # chain times of submissions (rate limit), rebuilt from the journal
        self._last_pause: str | None = None
        self._stop = threading.Event()  # set by SIGTERM/SIGINT (keeper.daemon.schedule.Shutdown)
        self._sections = 0  # journal sections open (a forced exit inside one exits 1)
        self._sections_lock = threading.Lock()
        self._in_flight_head: int | None = None
        self._replanned: tuple[int, bool] | None = None  # (head, still wanted) of the last still-wanted check
        self._block_times: dict[int, int] = {}
        self._last_success: dict[int, int] = {}  # vault → chain time of its last rebalance accounted here
        self._signer_low = Reminder(SIGNER_LOW_REMINDER_SECONDS)
        self._chain_problems: dict[str, str] = {}  # "head" / "read" → why the chain check fails
        # the depositor log scan starts at the VaultManager's deployment block once the config has one
        self.fees = FeeLedger(self.store, c.vault_manager, c.multicall,
                              start_block=c.deployed_at_block)
        self._persist_hooks: list[PersistHook] = []  # extra pipeline on_persist callbacks (tests, drills)
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
        from keeper.execute import killpoint
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
            observer=self._observe_send_rpc,
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
            private_max_failures=self.cfg.chain.send_private_max_failures,
            epoch=self._standby_epoch(),  # set by _refresh_leadership when the lease is held
            force_legacy=g.legacy,
        )
        metrics = ExecutionMetrics(hook=prometheus_hook(self.metrics.registry))
        kill = killpoint.from_env(os.environ)  # test-only fault injection (KEEPER_FAULT_KILL_AT); None unless set
        if kill is not None:
            _log.warning("FAULT INJECTION ARMED: this process SIGKILLs itself at a journal checkpoint; never in "
                         "production", variable=killpoint.ENV, value=os.environ.get(killpoint.ENV, "")[:40])
        return Pipeline(
            self.store,
            sending,
            self.signer,
            config,
            metrics=metrics,
            still_wanted=self._still_wanted,
            alert=self._alert,
            on_persist=_chained(self._persist_hooks + ([kill] if kill is not None else [])),
        )

    def _observe_send_rpc(self, endpoint: str, method: str, ok: bool, seconds: float) -> None:
        """The send path's RpcPool observer: the same per-endpoint series as the read path."""
        self.metrics.rpc_requests.labels(endpoint=endpoint).inc()
        if not ok:
            self.metrics.rpc_errors.labels(endpoint=endpoint).inc()
        self.metrics.rpc_latency.labels(endpoint=endpoint).observe(seconds)

    def _alert(self, kind: str, message: str) -> None:
        if kind == "fee_cap":
            self.metrics.fee_cap_waits.inc()
            self.metrics.fee_cap_waiting.set(1)
        _log.warning("alert", kind=kind, message=message)

    def _still_wanted(self, record: IntentRecord) -> bool:
        """Asked by the pipeline before a first send and before every replacement.

        Not wanted while a pause switch is on or the VaultManager is paused. A vault rebalance (it has a
        pending entry) is also re-planned: a fresh snapshot at the in-flight head, the oracle guard and
        `decide` — wanted iff a rebalance is still planned and not blocked by the guard. A read failure
        keeps the intent (a transient RPC error must not cancel a wanted rebalance). Other intents (LYF,
        gap fills) answer to the switches only.
        """
        snap = self._last_snapshot
        if self.switches.paused() is not None or (snap is not None and snap.manager.paused):
            return False
        if self.store.get_state(f"{PENDING}:{record.id}") is None:
            return True
        head = self._in_flight_head
        if head is None:
            return True
        if self._replanned is not None and self._replanned[0] == head:
            return self._replanned[1]
        with log.bound(intent_id=record.id):
            wanted = self._replan(head)
        self._replanned = (head, wanted)
        return wanted

    def _replan(self, head: int) -> bool:
        try:
            snap = replace(self.read(head), memory=self.load_memory())
        except Exception as exc:  # keep the intent: cancelling on a transient error would lose a wanted rebalance
            _log.warning("still-wanted check: read failed; keeping the intent", block=head,
                         error=f"{exc.__class__.__name__}: {exc}"[:300])
            return True
        if snap.manager.paused:
            _log.info("still-wanted check: the VaultManager is paused; not wanted", block=head)
            return False
        ev = self._evaluate(snap)
        wanted = ev.plan is not None and not ev.blocked
        _log.info("still-wanted check", block=head, wanted=wanted,
                  reason="planned" if wanted else ("oracle guard" if ev.blocked or ev.decision is None else "no plan"))
        return wanted

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
            self._chain_status("read", None)
            return snap
        self._chain_status("read", f"every endpoint failed to read block {block}")
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
                self._chain_status("head", None, f"head {number}")
                return number
            self.endpoints.failed(problem)
        self._chain_status("head", "every endpoint failed to answer eth_blockNumber")
        raise ReadError("every endpoint failed to answer eth_blockNumber")

    def _chain_status(self, source: str, problem: str | None, detail: str = "") -> None:
        """Readiness "chain": fails while the head read or the snapshot read fails (liveness is unaffected)."""
        if problem is None:
            self._chain_problems.pop(source, None)
        else:
            self._chain_problems[source] = problem[:200]
        problems = sorted(self._chain_problems.values())
        self.health.set_check("chain", not problems, "; ".join(problems) or detail or "reachable")
        self.metrics.ready.set(1 if self.health.ready()[0] else 0)

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
                self._chain_status("read", f"read failed: {exc}")
                _log.warning("snapshot read failed; retrying next block", error=str(exc)[:300])

    def _tick(self, block: int) -> None:
        # leadership is refreshed by its own thread (Renewer), not here: a block-less chain or a slow tick must
        # neither let the lease lapse nor delay a takeover
        # read and export even while paused: balance, health factor and the alert series stay current
        snap = replace(self.read(block), memory=self.load_memory())
        self._last_snapshot = snap
        self._ensure_rules(snap)
        self._export_snapshot(snap)
        pause = self.switches.paused()
        self.metrics.paused.set(1 if pause else 0)
        if pause:
            if pause != self._last_pause:
                _log.warning("paused: no new decisions", reason=pause)
            self._last_pause = pause
            return
        self._last_pause = None
        ev = self._evaluate(snap)
        self._export_oracle(ev.verdicts)
        if ev.decision is None:
            # GLP cannot be priced (a feed is zero or negative): every vault depends on it, so no decision
            _log.warning("oracle guard: GLP cannot be priced; no decision this block", refused=sorted(ev.refused))
            return
        decision = ev.decision
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
        if ev.blocked:
            _log.warning("oracle guard: no trade", refused=sorted(ev.refused), blocking=sorted(ev.blocked))
            return
        # One rebalance at a time until it is confirmed and accounted: only then does the decision memory carry
        # what it executed (OI applied, timers, last-rebalance marks); deciding on the books it already changed
        # with the memory from before it would plan the same refit again.
        if self._rebalance_in_flight():
            _log.info("a rebalance is in flight; waiting for it")
            return
        # A health-factor plan is never held back by the rate limit: liquidation is the larger loss.
        urgent = any(r.trigger == "health_factor" and r.fired for r in decision.triggers)
        if self._rate_limited(snap.block_timestamp, urgent=urgent):
            return
        try:  # decided at the guard's medians; netted and bounded at the raw snapshot (the contract's feeds)
            self._submit(snap, decision, block)
        except FencingError as exc:  # the journal refused: another replica leads
            self._step_down(f"fenced: {exc}")

    def _ensure_rules(self, snap: Snapshot) -> None:
        if not self.rules or set(self.rules) != {b.vault_id for b in snap.books}:
            self.rules = rules_by_vault(self.cfg, [b.vault_id for b in snap.books])

    def _evaluate(self, snap: Snapshot) -> Evaluation:
        """Oracle guard → priced snapshot (medians) → decide → which refused assets block the plan. No writes."""
        verdicts = oracle_check(snap, self.oracle_rules, self.oracle_default)
        refused = frozenset(s for s, v in verdicts.items() if not v.ok)
        if snap.glp.aum_min == 0 or any("non_positive" in verdicts[s].reasons for s in refused):
            return Evaluation(snap, verdicts, refused, None)
        self._ensure_rules(snap)
        marked = priced(snap, verdicts)
        decision = decide(marked, self.rules, marked.memory)
        plan = decision.plan
        if plan is None or not refused:
            return Evaluation(marked, verdicts, refused, decision)
        touched = {
            s for vp in plan.vaults for i, s in enumerate(plan.assets) if vp.debt[i] or vp.collateral[i] or vp.cash[i]
        }
        glp_dependent = plan.harvest or any(vp.glp or any(vp.debt) for vp in plan.vaults)
        return Evaluation(marked, verdicts, refused, decision,
                          frozenset(blocking(refused, touched, glp_dependent=glp_dependent)))

    def _rebalance_in_flight(self) -> bool:
        """A rebalance (vaults or LYF) not yet confirmed, or confirmed and not yet accounted (its memory not yet
        saved): the next one waits for it. Bounded by `chain.confirmations` blocks once mined."""
        if self.pipeline is None:
            return False
        sender = self._keeper_address()
        if any(r.intent.kind == "call" and r.state not in FINISHED for r in self.store.in_flight(sender)):
            return True
        return any(next(iter(unaccounted(self.store, sender, pending, accounted)), None) is not None
                   for pending, accounted in ((PENDING, ACCOUNTED), (LYF_PENDING, LYF_ACCOUNTED)))

    def _rate_limited(self, now: int, *, urgent: bool) -> bool:
        """safety.max_rebalances_per_hour on chain time (the devnet compresses time; on a live chain it is
        wall time), shared by every strategy; an urgent rebalance is never held back."""
        self._submitted = [t for t in self._submitted if now - t < 3600]
        if len(self._submitted) >= self.cfg.safety.max_rebalances_per_hour and not urgent:
            _log.warning("rate limit: max rebalances per hour reached", limit=self.cfg.safety.max_rebalances_per_hour)
            return True
        return False

    def build_order(self, snap: Snapshot, plan: Plan) -> NetPlan:
        """The plan as one Order, sized where `VaultManager` checks it: `snap` must be the RAW snapshot (feed
        answers, not the oracle guard's medians: `_checkBounds` values the legs at its own feeds), the real
        `maxSlippageBps` read at the snapshot's block, every leg's expected GMX fill checked against its
        minimum (`FillShortOfBound`: it would revert `FillOutsideBound`), and repays funded in the contract's
        execution order from the books' cash (`held`: else `InsufficientBalance`). Decisions stay at the medians."""
        self._ensure_rules(snap)
        changes = plan_changes(plan, snap, self.rules)
        process = [vp.vault_id for vp in plan.vaults if vp.process]
        return net_changes(
            changes,
            oracle_from_snapshot(snap),
            slippage_bps=self.cfg.slippage_bps,
            max_slippage_bps=self.max_slippage_bps(snap.block_number),
            deadline=snap.block_timestamp + self.cfg.deadline_seconds,
            flags=plan.flags,
            process_vaults=process,
            books={b.vault_id: b for b in snap.books},
            gmx=gmx_quote(snap),
            # the manager's balances at least: repays run before withdrawals (keeper.net.engine `held`)
            held=books_cash(snap.books, len(snap.assets)),
        )

    def max_slippage_bps(self, block: int) -> int:
        """`VaultManager.maxSlippageBps()` at `block` (the owner may change it with `setLimits`); cached per block."""
        cached = self._max_slippage.get(block)
        if cached is None:
            w3 = self.endpoints.w3()
            vm = w3.eth.contract(address=Web3.to_checksum_address(self.addresses.vault_manager), abi=self._vm_abi)
            cached = int(vm.functions.maxSlippageBps().call(block_identifier=block))
            if len(self._max_slippage) > 64:
                self._max_slippage.clear()
            self._max_slippage[block] = cached
        return cached

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
        except FillShortOfBound as exc:  # sent, it would revert FillOutsideBound and lose the gas
            self.metrics.rebalances.labels(result="fill_short_of_bound").inc()
            _log.warning("netting refused the plan: GMX's expected fill misses the bound", error=str(exc))
            return
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
        pending = {
            "plan": plan_to_json_dict(plan),
            "memory_after": _memory_json(decision.memory_after_execution),
            "block": snap.block_number,
            "submitted_at": snap.block_timestamp,
        }
        with self._journal_section():  # the intent and its pending entry: both or (after a crash) reconciled
            record = self.pipeline.submit(intent, head=block)
            self._submitted.append(snap.block_timestamp)
            self.store.put_state(f"{PENDING}:{record.id}", json.dumps(pending, sort_keys=True))
        for name, _count in _fired(decision):  # one count per rebalance and trigger kind
            self.metrics.triggers.labels(trigger=name).inc()
        with log.bound(intent_id=record.id):
            _log.info(
                "rebalance submitted",
                fired=[r.reason() for r in decision.triggers if r.fired][:8],
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
    @contextmanager
    def _journal_section(self) -> Iterator[None]:
        """Marks journal writes that belong together: a forced exit (shutdown bound) inside one exits 1."""
        with self._sections_lock:
            self._sections += 1
        try:
            yield
        finally:
            with self._sections_lock:
                self._sections -= 1

    def journal_safe(self) -> bool:
        """No journal section is open (every write of the journal is its own transaction besides)."""
        with self._sections_lock:
            return self._sections == 0

    def on_in_flight(self, head: int) -> None:
        if self.pipeline is None:
            return
        if not self._leading():
            return
        with log.bound(block=head), self._journal_section():
            self._in_flight(head)

    def _in_flight(self, head: int) -> None:
        self._in_flight_head = head
        self._replanned = None  # still-wanted answers hold for one pipeline tick
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
        self._export_oldest_pending(in_flight, head)
        if not in_flight:
            self.metrics.fee_cap_waiting.set(0)
        self._account(head)
        if self.lyf is not None:
            self.lyf.account(head)

    def _export_oldest_pending(self, in_flight: list[IntentRecord], head: int) -> None:
        """keeper_oldest_pending_transaction_age_seconds: chain time since the oldest broadcast-but-unmined
        intent was first sent (its first attempt's block), 0 when none. Chain time, so a restart keeps it."""
        sent = [
            a.first_sent_block
            for r in in_flight
            if r.state in (State.SIGNED, State.BROADCAST)
            for a in self.store.attempts(r.id)
            if a.first_sent_block is not None
        ]
        if not sent:
            self.metrics.oldest_pending.set(0)
            return
        try:
            age = self._block_time(head) - self._block_time(min(sent))
        except Exception as exc:  # a metric only: the next in-flight tick retries
            _log.debug("pending age: block time unavailable", error=f"{exc.__class__.__name__}: {exc}"[:200])
            return
        self.metrics.oldest_pending.set(max(age, 0))

    def _block_time(self, number: int) -> int:
        cached = self._block_times.get(number)
        if cached is None:
            cached = int(self.endpoints.w3().eth.get_block(number)["timestamp"])
            if len(self._block_times) > 256:
                self._block_times.clear()
            self._block_times[number] = cached
        return cached

    def _account(self, head: int) -> None:
        """Account every finished rebalance once: attribution record, fee ledger, memory, metrics.

        Each write is idempotent (records are append-once, the ledger remembers the last rebalance it
        applied) and the intent is marked accounted last, so a crash in between repeats nothing twice.
        """
        for record, pending_text in unaccounted(self.store, self._keeper_address(), PENDING, ACCOUNTED):
            with log.bound(intent_id=record.id):
                self._account_one(record, json.loads(pending_text))

    def _account_one(self, record: IntentRecord, pending: Mapping[str, Any]) -> None:
        if record.outcome != "success":
            result = record.outcome or record.state.value
            self.metrics.rebalances.labels(result=result).inc()
            self._count_failed_gas(record, result)
            _log.warning(
                "rebalance did not take effect",
                state=record.state.value,
                outcome=record.outcome,
                error=record.error,
            )
            self.store.put_state(f"{ACCOUNTED}:{record.id}", record.state.value)
            return
        try:
            attribution, snap, mined_block = self._attribute(record, pending)
        except Exception as exc:  # accounting must never stop the keeper; the log says what is missing
            _log.error("attribution failed", error=f"{exc.__class__.__name__}: {exc}")
            attribution, snap, mined_block = None, None, None
        if attribution is not None and snap is not None and mined_block is not None:
            self.store.add_record(
                ATTRIBUTION,
                f"{attribution.rebalance_id:010d}",
                json.dumps(attribution.to_json_dict(), sort_keys=True),
            )
            self._charge_ledger(snap, attribution, mined_block)
            for cost in attribution.vaults:
                self.metrics.gas_spent.labels(vault=str(cost.vault_id)).inc(cost.gas_wei)
                for asset, fee in enumerate(cost.fee_tokens):
                    if fee:
                        symbol = pending["plan"]["assets"][asset]
                        self.metrics.fees_paid.labels(vault=str(cost.vault_id), asset=symbol).inc(fee)
        self.save_memory(memory_from_json_dict(pending["memory_after"]))
        self.metrics.rebalances.labels(result="success").inc()
        self.store.put_state(f"{ACCOUNTED}:{record.id}", "success")

    def _count_failed_gas(self, record: IntentRecord, result: str) -> None:
        """Gas paid by a mined transaction that did not take effect (reverted, cancelled, no event)."""
        if record.mined_tx_hash is None:
            return
        try:
            receipt = self.endpoints.w3().eth.get_transaction_receipt(record.mined_tx_hash)  # type: ignore[arg-type]
            wei = int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
        except Exception as exc:  # a metric only
            _log.warning("receipt unavailable; gas of a failed rebalance not counted",
                         error=f"{exc.__class__.__name__}: {exc}"[:200])
            return
        self.metrics.failed_gas.labels(result=result).inc(wei)

    def load_ledger(self) -> Ledger:
        return self.fees.load()

    def _charge_ledger(self, snap: Snapshot, attribution: AttributionRecord, mined_block: int) -> None:
        """The fee ledger within each vault (keeper.account.fees): the vault's own attributed fee + gas
        (micro-USD, rounded down) borne by its depositors' positions just before the rebalance was mined.
        Applied once per rebalance id; charges and the ledger survive restarts in the journal."""
        if attribution.rebalance_id <= self.fees.last_rebalance_id():
            return
        vaults = [v.vault_id for v in attribution.vaults]
        try:
            positions = self.fees.positions(self.endpoints.w3(), vaults, max(mined_block - 1, 0))
        except Exception as exc:  # the vault bears its own cost this time (the ledger still conserves it)
            _log.warning("depositor positions unreadable; each vault is its own holder for this rebalance",
                         error=f"{exc.__class__.__name__}: {exc}"[:300])
            positions = {}
        eth = next((a for a in snap.assets if a.symbol == "WETH"), None)
        self.fees.charge(attribution, feed_price_usd30(eth) if eth is not None else 0, positions)
        self._export_fee_ledger()

    def _export_fee_ledger(self) -> None:
        for vault_id, (cost, charged) in self.fees.totals().items():
            self.metrics.fee_ledger_cost.labels(vault=str(vault_id)).set(cost / 10**6)
            self.metrics.fee_ledger_charged.labels(vault=str(vault_id)).set(charged / 10**6)

    def _attribute(
        self, record: IntentRecord, pending: Mapping[str, Any]
    ) -> tuple[AttributionRecord, Snapshot, int]:
        w3 = self.endpoints.w3()
        assert record.mined_tx_hash is not None
        receipt = w3.eth.get_transaction_receipt(record.mined_tx_hash)  # type: ignore[arg-type]
        raw = replace(self.read(int(pending["block"])), memory=Memory())
        snap = priced(raw, oracle_check(raw, self.oracle_rules, self.oracle_default))  # the marks it was decided at
        plan = plan_from_json_dict(pending["plan"])
        net = self.build_order(raw, plan)  # netted at the raw snapshot's feeds, as submitted
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
        mined_block = int(receipt["blockNumber"])
        mined_at = int(w3.eth.get_block(mined_block)["timestamp"])
        for vp in plan.vaults:
            self._last_success[vp.vault_id] = mined_at
            self.metrics.last_rebalance.labels(vault=str(vp.vault_id)).set(mined_at)
        return attribute(net, execution, rebalance_id), snap, mined_block

    # --- exports -------------------------------------------------------------------------------------------------
    def _export_snapshot(self, snap: Snapshot) -> None:
        m = self.metrics
        m.signer_balance.set(snap.keeper_balance_wei)
        hf = snap.lending.health_factor
        m.health_factor.set(float(hf) / 1e18 if hf < 2**255 else float("inf"))  # display gauge only
        for book in snap.books:
            vault = str(book.vault_id)
            m.vault_equity.labels(vault=vault).set(book.equity_usd / USD30)
            # seeded from chain every tick (a restart keeps it): every recurring cycle rebalances every vault
            last = max(snap.manager.last_cycle_at, self._last_success.get(book.vault_id, 0))
            m.last_rebalance.labels(vault=vault).set(last)
            rules = self.rules.get(book.vault_id)
            if rules is not None:
                m.rebalance_deadline.labels(vault=vault).set(rules.cycle_seconds)
        minimum = self.cfg.safety.min_signer_balance_wei
        change = self._signer_low.update(snap.keeper_balance_wei < minimum)
        if change in ("raised", "again"):
            _log.warning("signer balance below minimum", balance_wei=snap.keeper_balance_wei, minimum_wei=minimum,
                         first=change == "raised")
        elif change == "cleared":
            _log.info("signer balance back above minimum", balance_wei=snap.keeper_balance_wei, minimum_wei=minimum)

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
            vault = parts[1] if parts[0] == "vault" and len(parts) > 1 else None
            halted.add(vault or "all")
            with log.bound(**({"vault": vault} if vault is not None else {})):
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
        """Endpoints, signer, pipeline, leadership, reconcile, the rate-limit window. Each step first checks
        the stop flag: a SIGTERM during start-up skips the rest."""
        self.endpoints.verify(self.cfg.chain.chain_id)
        if self._stop.is_set():
            return
        self.signer = self._signer()
        self.health.set_check("signer", True, "dry run" if self.signer is None else "ready")
        if self.signer is not None:
            self.pipeline = self._pipeline()
        self._refresh_leadership()
        self._export_fee_ledger()
        if self._stop.is_set():
            return
        if self.pipeline is not None and self._leading():
            try:
                with self._journal_section():
                    plan = self.pipeline.reconcile()
                self._reconcile_due = False
                _log.info("journal reconciled with the chain", plan=str(plan)[:300])
            except FencingError as exc:
                self._step_down(f"fenced: {exc}")
            except KeeperError as exc:  # the first in-flight tick retries
                _log.warning("reconcile failed; retrying on the next tick", error=str(exc)[:300])
        self._rebuild_rate_window()

    def _rebuild_rate_window(self) -> None:
        """The rate limit's window from the journal: the chain times of the latest submissions (vault and LYF
        rebalances; only the last `max_rebalances_per_hour` can matter), so a restart does not reset it."""
        limit = self.cfg.safety.max_rebalances_per_hour
        records = [
            r
            for r in self.store.all_intents(self._keeper_address())
            if r.created_block is not None
            and (self.store.get_state(f"{PENDING}:{r.id}") or self.store.get_state(f"{LYF_PENDING}:{r.id}"))
        ]
        times: list[int] = []
        for r in sorted(records, key=lambda r: r.id)[-limit:]:
            text = self.store.get_state(f"{PENDING}:{r.id}") or "{}"
            at = json.loads(text).get("submitted_at")
            if not isinstance(at, int):
                try:
                    assert r.created_block is not None
                    at = self._block_time(r.created_block)
                except Exception as exc:
                    _log.warning("rate limit: submission time unreadable; not counted", intent_id=r.id,
                                 error=f"{exc.__class__.__name__}: {exc}"[:200])
                    continue
            times.append(at)
        self._submitted = sorted(times)
        if times:
            _log.info("rate limit window rebuilt from the journal", submissions=len(times), latest_at=times[-1])

    def close(self) -> None:
        """Release what `start()` took: lease renewal, probe, lease, journal (the HTTP server is `run()`'s)."""
        if self._renewer is not None:
            self._renewer.stop()
        self.endpoints.stop_probe()
        try:
            self.lease.release()
        except Exception as exc:
            _log.warning("lease release failed", error=str(exc))
        self.store.close()

    def run(self) -> int:
        """Serve, start, schedule until SIGTERM/SIGINT; the exit code (0: clean, 1: the grace period ran out)."""
        s = self.cfg.schedule
        # first thing: a signal during start-up (endpoint checks, reconcile) must not kill the process
        shutdown = Shutdown(s.grace_seconds, stop=self._stop, safe=self.journal_safe)
        shutdown.install()
        try:
            return self._run(shutdown)
        finally:
            shutdown.restore()

    def _run(self, shutdown: Shutdown) -> int:
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
            shutdown_bound_seconds=shutdown.bound_seconds,
        )
        try:
            self.start()
            if self._stop.is_set():
                _log.info("stop requested during start-up; not scheduling")
                return 0
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
                stop=self._stop,
            )
            clean = daemon.run_until_stopped()
            if not clean:
                _log.warning("grace period ran out with a job still running", journal_safe=self.journal_safe())
            return 0 if clean or self.journal_safe() else 1
        finally:
            self.close()
            server.shutdown()
            server.server_close()
            _log.info("keeper stopped")


PersistHook = Callable[[str, IntentRecord], None]


def _chained(hooks: list[PersistHook]) -> PersistHook | None:
    """One on_persist callback calling each hook in order (None when there are none)."""
    if not hooks:
        return None
    if len(hooks) == 1:
        return hooks[0]

    def each(checkpoint: str, record: IntentRecord) -> None:
        for hook in hooks:
            hook(checkpoint, record)

    return each


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
