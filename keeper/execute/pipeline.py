"""The execution pipeline: takes intents to exactly-once effect on chain. The imperative shell.

    submit(intent)   journal the intent (idempotent by key)
    reconcile()      on start: align the journal with the chain (mined / re-broadcast / gaps)
    tick()           advance every in-flight intent one step per state:
                     simulate → reserve nonce → sign → store → send → watch → replace/cancel → confirm → finalize

Invariants (docs/execution.md):
* a nonce is reserved in the journal (with the fencing epoch checked) before signing;
* every signed transaction is stored before it is sent; re-sends use the stored bytes;
* a nonce is released only when no transaction at it can ever be mined (a definitive pre-broadcast refusal, or the
  chain used it for a transaction that is not ours);
* nothing is sent that re-simulation says reverts, or above the fee cap;
* every new attempt at a nonce out-bids every earlier one there (refused ones included): never the same bytes twice;
* one intent's failure never holds up the others: `tick` isolates each intent's step (FencingError excepted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keeper import log
from keeper.errors import ReadError, SubmissionError
from keeper.execute.chain import Block, CallRequest, Chain, Receipt, Route, Simulation
from keeper.execute.classify import SendError
from keeper.execute.gas import (
    CapDecision,
    Fees,
    GasPolicy,
    Speed,
    bump_base,
    cap_first_send,
    gas_limit_for,
    legacy_fees,
    market_fees,
    replacement_fees,
)
from keeper.execute.metrics import ExecutionMetrics
from keeper.execute.reconcile import JournalNonce, ReconcilePlan, plan_reconciliation
from keeper.execute.revert import DecodedRevert, ErrorDecoder
from keeper.execute.signer import Signer
from keeper.store.base import FencingError, Store
from keeper.store.model import (
    Attempt,
    AttemptKind,
    AttemptStatus,
    Intent,
    IntentRecord,
    NewAttempt,
    Outcome,
    State,
    final_state,
)

_log = log.get("keeper.execute")

CANCEL_GAS = 21_000
StillWanted = Callable[[IntentRecord], bool]
Alert = Callable[[str, str], None]
PersistHook = Callable[[str, IntentRecord], None]

# Every label the pipeline passes to `on_persist`, each right after the journal write it names: intent states
# as they are reached, plus the steps between them (nonce_reserved; sent: a node has the bytes, the journal does
# not know yet; replacement_signed / cancel_signed: a further attempt at the nonce is stored; reorged: a mined
# intent went back to broadcast).
CHECKPOINTS: tuple[str, ...] = (
    "planned",
    "simulated",
    "nonce_reserved",
    "signed",
    "sent",
    "broadcast",
    "mined",
    "confirmed",
    "finalized",
    "failed",
    "cancelled",
    "replacement_signed",
    "cancel_signed",
    "reorged",
)


@dataclass(frozen=True)
class PipelineConfig:
    chain_id: int
    confirmations: int = 2
    stuck_blocks: int = 3
    gas: GasPolicy = field(default_factory=GasPolicy)
    gas_limit_margin_percent: int = 120
    private_fallback_blocks: int = 5  # blocks after the first send try before public broadcast too
    private_max_failures: int = 3  # consecutive private send failures before public broadcast
    nonce_lost_grace_blocks: int = 2
    epoch: int | None = None  # fencing token: checked in the nonce reservation when set
    force_legacy: bool = False


@dataclass
class _Tick:
    head: Block
    latest_nonce: int
    fee_history_done: bool = False
    fees_1559: dict[str, Fees] = field(default_factory=dict)
    legacy_price: int | None = None
    next_base_fee: int | None = None


class Pipeline:
    def __init__(
        self,
        store: Store,
        chain: Chain,
        signer: Signer,
        config: PipelineConfig,
        *,
        decoder: ErrorDecoder | None = None,
        still_wanted: StillWanted | None = None,
        metrics: ExecutionMetrics | None = None,
        alert: Alert | None = None,
        on_persist: PersistHook | None = None,
    ) -> None:
        self.store = store
        self.chain = chain
        self.signer = signer
        self.config = config
        self.sender = signer.address
        self.decoder = decoder or ErrorDecoder.from_abi_dir()
        self.still_wanted: StillWanted = still_wanted or (lambda _record: True)
        self.metrics = metrics or ExecutionMetrics()
        self._alert = alert
        self._on_persist = on_persist
        self._waiting: set[int] = set()  # intents currently held back by the fee cap (alert once per episode)
        self._private_failures: dict[int, int] = {}  # intent → consecutive private send failures
        self._went_public: set[int] = set()  # intents whose private window is over (counted once)
        self._failing: dict[int | None, str] = {}  # intent (None: gap filling) → last step error (logged once)
        self.last_revert: dict[int, DecodedRevert] = {}

    # --- public API ---------------------------------------------------------------------------------------------
    def submit(self, intent: Intent, head: int | None = None) -> IntentRecord:
        """Journal `intent`; the same idempotency key returns the existing intent (never a second one)."""
        record, created = self.store.submit(intent, self.sender, created_block=head)
        if created:
            _log.info("intent.planned", intent_id=record.id, kind=intent.kind, urgency=intent.urgency)
            self._persisted("planned", record)
        return record

    def reconcile(self) -> ReconcilePlan:
        """On start: mark mined intents, re-broadcast signed ones the node lost, fill nonce gaps."""
        tick = self._new_tick()
        pending = self.chain.nonce(self.sender, "pending")
        records = {r.id: r for r in self.store.in_flight(self.sender)}
        held = [
            JournalNonce(
                nonce=r.nonce,
                intent_id=r.id,
                has_signed_tx=bool(self.store.attempts(r.id)),
                on_chain_state=r.state in (State.MINED, State.CONFIRMED),
            )
            for r in records.values()
            if r.nonce is not None
        ]
        plan = plan_reconciliation(tick.latest_nonce, pending, held)
        _log.info(
            "reconcile.plan",
            latest_nonce=tick.latest_nonce,
            pending_nonce=pending,
            steps=[f"{s.nonce}:{s.action}" for s in plan.steps],
        )
        for step in plan.steps:
            record = records.get(step.intent_id) if step.intent_id is not None else None
            if step.action == "fill_gap":
                self._isolated(None, self._fill_gap, step.nonce, tick)
            elif record is None:
                continue
            elif step.action == "check_mined":
                self._isolated(record.id, self._check_mined_or_lost, record, tick)
            elif step.action == "rebroadcast":
                self._isolated(record.id, self._rebroadcast_if_lost, record, tick)
        if plan.foreign_pending:
            self._raise_alert(
                "foreign_pending", f"{plan.foreign_pending} pending transaction(s) from this key are not in the journal"
            )
        return plan

    def tick(self) -> list[IntentRecord]:
        """Advance every in-flight intent; returns their records after the tick.

        Each intent's step is isolated: an error (a read failure, a refused send, a journal constraint, a bug)
        is counted (`tick_errors`), logged once per distinct error without a traceback, and retried next tick,
        while the other intents advance. FencingError (another keeper leads) propagates: stop everything."""
        tick = self._new_tick()
        for record in self.store.in_flight(self.sender):
            self._isolated(record.id, self._advance, record, tick)
        self._isolated(None, self._fill_gaps, tick)
        return self.store.in_flight(self.sender)

    def _isolated(self, intent_id: int | None, step: Callable[..., object], *args: Any) -> None:
        try:
            step(*args)
        except FencingError:
            raise
        except Exception as exc:
            kind = "read" if isinstance(exc, ReadError) else "submission" if isinstance(exc, SubmissionError) else "bug"
            self.metrics.inc("tick_errors", reason=kind)
            text = f"{exc.__class__.__name__}: {str(exc)[:300]}"
            if self._failing.get(intent_id) != text:  # once per distinct error, not every tick
                self._failing[intent_id] = text
                log_at = _log.warning if kind != "bug" else _log.error
                log_at("intent.step_failed", intent_id=intent_id, kind=kind, error=text)
        else:
            if self._failing.pop(intent_id, None) is not None:
                _log.info("intent.step_recovered", intent_id=intent_id)

    def run_until_settled(self, step: Callable[[], None], max_ticks: int = 100) -> list[IntentRecord]:
        """Tick until nothing is in flight (tests and drills); `step` advances the chain between ticks."""
        for _ in range(max_ticks):
            if not self.tick():
                return []
            step()
        return self.store.in_flight(self.sender)

    # --- per-state steps ----------------------------------------------------------------------------------------
    def _advance(self, record: IntentRecord, tick: _Tick) -> None:
        for _ in range(8):  # several steps per tick when nothing needs to wait (bounded)
            before = record.state
            if record.state is State.PLANNED:
                record = self._plan_step(record, tick)
            elif record.state is State.SIMULATED:
                record = self._send_first(record, tick)
            elif record.state is State.SIGNED:
                record = self._send_signed(record, tick)
            elif record.state is State.BROADCAST:
                record = self._watch(record, tick)
            elif record.state in (State.MINED, State.CONFIRMED):
                record = self._confirm(record, tick)
            if record.state == before or record.terminal:
                return

    def _plan_step(self, record: IntentRecord, tick: _Tick) -> IntentRecord:
        head = tick.head.number
        if self._expired(record, head):
            return self._finish(record, State.CANCELLED, cancel_reason="expired")
        if not self.still_wanted(record):
            return self._finish(record, State.CANCELLED, cancel_reason="not_wanted")
        sim = self._simulate(record, head)
        if not sim.ok:
            return self._reverted_before_send(record, sim)
        record = self.store.transition(
            record.id, State.PLANNED, State.SIMULATED, gas_estimate=sim.gas, simulated_block=head
        )
        self._persisted("simulated", record)
        return record

    def _send_first(self, record: IntentRecord, tick: _Tick) -> IntentRecord:
        head = tick.head.number
        if self._expired(record, head):
            return self._finish(record, State.CANCELLED, cancel_reason="expired", nonce=None)
        if not self.still_wanted(record):
            return self._finish(record, State.CANCELLED, cancel_reason="not_wanted", nonce=None)
        if record.nonce is not None and record.nonce < tick.latest_nonce and not self.store.attempts(record.id):
            # reserved, never signed, and the chain already used that nonce: nothing of ours is there
            record = self.store.transition(record.id, State.SIMULATED, State.SIMULATED, nonce=None)
        if record.intent.kind == "gap_fill" and record.nonce is None and not self._gap_exists(tick):
            return self._finish(record, State.CANCELLED, cancel_reason="no_gap")
        # re-simulate before every first send, on the newest state: the tick's head was read before the plan
        # step and the still-wanted check, and a block mined since (a price update) is what the send meets
        fresh = self.chain.block("latest")
        at = max(head, fresh.number) if fresh is not None else head
        if record.simulated_block != at:
            sim = self._simulate(record, at)
            if not sim.ok:
                return self._reverted_before_send(record, sim)
            record = self.store.transition(
                record.id, State.SIMULATED, State.SIMULATED, gas_estimate=sim.gas, simulated_block=at
            )
        gas_limit = gas_limit_for(record.gas_estimate or CANCEL_GAS, record.intent.gas_limit, self._margin)
        previous = [a for a in self.store.attempts(record.id) if a.nonce == record.nonce]
        market = self._market(tick, record.intent.urgency, legacy=None)
        if previous:  # a node refused an earlier attempt as underpriced: bump over every one of them
            base = bump_base([_fees_of(a) for a in previous], market.legacy)
            decision = replacement_fees(base, market, gas_limit, self.config.gas, self._next_base_fee(tick))
        else:
            decision = cap_first_send(market, gas_limit, self._next_base_fee(tick), self.config.gas)
        if self._held_by_cap(record, decision):
            return record
        nonce = self.store.reserve_nonce(record.id, self.sender, tick.latest_nonce, self.config.epoch)
        record = self.store.get(record.id)
        self._persisted("nonce_reserved", record)
        assert decision.fees is not None
        attempt = self._sign_and_store(
            record,
            tick,
            nonce=nonce,
            kind="original",
            fees=decision.fees,
            gas_limit=gas_limit,
            expected=State.SIMULATED,
        )
        if attempt is None:
            return self.store.get(record.id)
        record = self.store.get(record.id)
        self._persisted("signed", record)
        return self._send(record, attempt, tick)

    def _send_signed(self, record: IntentRecord, tick: _Tick) -> IntentRecord:
        """SIGNED after a crash or a transient failure: send the stored bytes again (identical)."""
        if tick.latest_nonce > (record.nonce or 0):
            return self._check_mined_or_lost(record, tick)
        current = _current(self.store.attempts(record.id))
        if current is None:
            return record
        return self._send(record, current, tick)

    def _watch(self, record: IntentRecord, tick: _Tick) -> IntentRecord:
        head = tick.head.number
        attempts = self.store.attempts(record.id)
        found = self._find_receipt(attempts)
        if found is not None:
            return self._mark_mined(record, *found)
        assert record.nonce is not None
        if tick.latest_nonce > record.nonce:
            return self._check_mined_or_lost(record, tick)
        if record.nonce_lost_block is not None:
            record = self.store.transition(record.id, State.BROADCAST, State.BROADCAST, nonce_lost_block=None)
        current = _current(attempts)
        if current is None:
            return record
        latest = current
        record = self._rebroadcast_if_lost(record, tick, latest)
        if record.state is not State.BROADCAST:
            return record
        if record.cancel_reason is None:
            if self._expired(record, head):
                return self._cancel(record, latest, tick, "expired")
        elif latest.kind != "cancel":  # cancel decided but held back (cap): try again
            return self._replace(record, latest, tick, "cancel")
        sent = latest.first_sent_block if latest.first_sent_block is not None else head
        if head - sent < self.config.stuck_blocks:
            return record
        if record.cancel_reason is not None:
            return self._replace(record, latest, tick, "cancel")
        if not self.still_wanted(record):  # ask the planner before paying more
            return self._cancel(record, latest, tick, "not_wanted")
        sim = self._simulate(record, head)  # re-simulate before every replacement
        if not sim.ok:
            decoded = self._log_revert(record, sim)
            return self._cancel(record, latest, tick, f"would_revert:{decoded.name}"[:100])
        return self._replace(record, latest, tick, "replacement", sim.gas)

    def _confirm(self, record: IntentRecord, tick: _Tick) -> IntentRecord:
        assert record.mined_tx_hash is not None and record.mined_block is not None
        receipt = self.chain.receipt(record.mined_tx_hash)
        if receipt is None or receipt.block_hash != record.mined_block_hash:
            return self._reorged(record, tick)
        confirmations = tick.head.number - receipt.block_number + 1
        if record.state is State.MINED:
            if confirmations < self.config.confirmations:
                return record
            record = self.store.transition(record.id, State.MINED, State.CONFIRMED)
            _log.info("intent.confirmed", intent_id=record.id, nonce=record.nonce, confirmations=confirmations)
            self._persisted("confirmed", record)
        finalized = self.chain.block("finalized")
        if finalized is None or finalized.number < receipt.block_number:
            return record
        assert record.outcome is not None
        return self._finish(record, final_state(record.outcome))

    # --- helpers: sending ---------------------------------------------------------------------------------------
    def _sign_and_store(
        self,
        record: IntentRecord,
        tick: _Tick,
        *,
        nonce: int,
        kind: AttemptKind,
        fees: Fees,
        gas_limit: int,
        expected: State,
    ) -> Attempt | None:
        tx = self._tx(record, nonce, kind, fees, gas_limit)
        try:
            signed = self.signer.sign(tx)
        except SubmissionError as exc:
            self.metrics.inc("give_ups", reason="signing")
            if expected is State.SIMULATED and exc.action == "give_up":
                self._finish(record, State.FAILED, error=str(exc)[:300], nonce=None)
            _log.error("intent.sign_failed", intent_id=record.id, error=str(exc)[:300])
            return None
        new_state = State.SIGNED if expected is State.SIMULATED else expected
        attempt = self.store.add_attempt(
            record.id,
            NewAttempt(
                kind=kind,
                nonce=nonce,
                tx_hash=signed.tx_hash,
                raw=signed.raw,
                gas_limit=gas_limit,
                max_fee=fees.max_fee,
                priority_fee=fees.priority_fee,
                gas_price=fees.gas_price,
                signed_block=tick.head.number,
            ),
            expected,
            new_state,
        )
        _log.info(
            "intent.signed",
            intent_id=record.id,
            nonce=nonce,
            attempt=kind,
            tx_hash=signed.tx_hash,
            max_fee_per_gas=fees.max_fee,
            priority_fee_per_gas=fees.priority_fee,
            gas_price=fees.gas_price,
            gas_limit=gas_limit,
        )
        return attempt

    def _tx(self, record: IntentRecord, nonce: int, kind: AttemptKind, fees: Fees, gas_limit: int) -> dict[str, Any]:
        cancel = kind == "cancel"
        tx: dict[str, Any] = {
            "chainId": self.config.chain_id,
            "nonce": nonce,
            "to": self.sender if cancel else record.intent.to,
            "value": 0 if cancel else record.intent.value,
            "data": b"" if cancel else record.intent.data,
            "gas": gas_limit,
        }
        if fees.gas_price is not None:
            tx["gasPrice"] = fees.gas_price
        else:
            tx.update(type=2, maxFeePerGas=fees.max_fee, maxPriorityFeePerGas=fees.priority_fee)
        return tx

    def _private_window(self, record: IntentRecord, tick: _Tick, attempts: list[Attempt]) -> str | None:
        """Why this intent no longer goes private first (None: it does). The window counts from the first send
        TRY (the first attempt's signing block), not the first success: an endpoint that is down never opens
        it. `private_max_failures` consecutive failures, or one definitive refusal, close it early."""
        if self._private_failures.get(record.id, 0) >= self.config.private_max_failures:
            return "failures"
        starts = [a.signed_block if a.signed_block is not None else a.first_sent_block for a in attempts]
        first = min((b for b in starts if b is not None), default=tick.head.number)
        if tick.head.number - first >= self.config.private_fallback_blocks:
            return "window"
        return None

    def _route(self, record: IntentRecord, tick: _Tick) -> Route:
        """Private endpoint first (when configured); public broadcast once the private window is over."""
        if not self.chain.has_private_route:
            return "public"
        closed = self._private_window(record, tick, self.store.attempts(record.id))
        if closed is None:
            return "private"
        if record.id not in self._went_public:
            self._went_public.add(record.id)
            self.metrics.inc("private_fallbacks", reason=closed)
            _log.warning("intent.private_fallback", intent_id=record.id, reason=closed)
        return "public"

    def _deliver(self, raw: bytes, route: Route) -> SendError | None:
        """Send `raw`; None when a node has it (accepted, or "already known"), else the classified refusal."""
        try:
            self.chain.send_raw(raw, route=route)
        except SendError as exc:
            if exc.outcome.kind != "already_known":
                return exc
        return None

    def _private_failed(self, record: IntentRecord, exc: SendError) -> bool:
        """Count a private send failure; True when the intent now goes public (at once, in the same send)."""
        if exc.outcome.kind == "nonce_too_low":  # the relay saw the nonce used: the public receipts decide
            return False
        failures = self._private_failures.get(record.id, 0) + 1
        if exc.outcome.kind != "transient":  # the relay refused these bytes: a public node may well take them
            failures = max(failures, self.config.private_max_failures)
        self._private_failures[record.id] = failures
        _log.warning(
            "intent.private_send_failed", intent_id=record.id, reason=exc.outcome.kind, consecutive=failures
        )
        return failures >= self.config.private_max_failures

    def _send(self, record: IntentRecord, attempt: Attempt, tick: _Tick, *, resend: bool = False) -> IntentRecord:
        head = tick.head.number
        route = self._route(record, tick)
        error = self._deliver(attempt.raw, route)
        if route == "private":
            if error is None:
                self._private_failures.pop(record.id, None)
            elif self._private_failed(record, error):
                route = self._route(record, tick)
                error = self._deliver(attempt.raw, route)
        if error is not None:
            kind = error.outcome.kind
            if kind == "transient":
                self.metrics.inc("send_errors", reason="transient")
                _log.warning("intent.send_retry", intent_id=record.id, tx_hash=attempt.tx_hash, error=str(error)[:200])
                return record
            if kind == "nonce_too_low":
                return self._check_mined_or_lost(record, tick)
            return self._refused(record, attempt, error)
        self._persisted("sent", record)  # checkpoint: a node has the bytes, the journal does not know yet
        self.store.mark_attempt(attempt.id, AttemptStatus.BROADCAST, sent_block=head, route=route)
        self._supersede(record, attempt)
        self.metrics.inc("rebroadcasts" if resend else "broadcasts", reason=attempt.kind)
        _log.info("intent.broadcast", intent_id=record.id, nonce=attempt.nonce, tx_hash=attempt.tx_hash, route=route)
        if record.state is State.SIGNED:
            record = self.store.transition(record.id, State.SIGNED, State.BROADCAST)
            self._persisted("broadcast", record)
        return record

    def _supersede(self, record: IntentRecord, accepted: Attempt) -> None:
        """A node took `accepted`: every earlier attempt at its nonce is now replaced (it can still win the race:
        every attempt's receipt is looked for until one is mined)."""
        for older in self.store.attempts(record.id):
            if (
                older.seq < accepted.seq
                and older.nonce == accepted.nonce
                and older.status in (AttemptStatus.SIGNED, AttemptStatus.BROADCAST)
            ):
                self.store.mark_attempt(older.id, AttemptStatus.REPLACED)

    def _refused(self, record: IntentRecord, attempt: Attempt, exc: SendError) -> IntentRecord:
        """A node refused these bytes definitively: they are in no mempool."""
        kind = exc.outcome.kind
        if attempt.first_sent_block is not None:
            # a re-send of bytes a node accepted before: they may still be in other mempools, keep them live
            _log.warning("intent.resend_refused", intent_id=record.id, tx_hash=attempt.tx_hash, reason=kind)
            return record
        self.store.mark_attempt(attempt.id, AttemptStatus.REJECTED)
        attempts = self.store.attempts(record.id)
        ever_sent = any(a.first_sent_block is not None for a in attempts)
        _log.warning("intent.send_refused", intent_id=record.id, tx_hash=attempt.tx_hash, reason=kind)
        if exc.action == "replace":  # underpriced / below base fee: re-price at the same nonce
            self.metrics.inc("give_ups", reason=kind)
            if record.state is State.SIGNED and not ever_sent:
                return self.store.transition(record.id, State.SIGNED, State.SIMULATED)  # keeps the nonce
            return record
        self.metrics.inc("give_ups", reason=kind)
        if kind == "insufficient_funds":
            self._raise_alert("insufficient_funds", f"intent {record.id}: sender cannot pay for gas + value")
        if record.state is State.SIGNED and not ever_sent:
            return self._finish(record, State.FAILED, error=f"refused: {kind}", nonce=None)
        return record  # a replacement/cancel was refused: keep watching what is already in the pool

    def _rebroadcast_if_lost(self, record: IntentRecord, tick: _Tick, attempt: Attempt | None = None) -> IntentRecord:
        if attempt is None:
            attempt = _current(self.store.attempts(record.id))
            if attempt is None:
                return record
        private = attempt.route == "private" and self._route(record, tick) == "private"
        if attempt.status is AttemptStatus.BROADCAST and private:
            return record  # the public node cannot see a private transaction; wait for the fallback
        if attempt.status is AttemptStatus.BROADCAST and self.chain.knows(attempt.tx_hash):
            return record
        _log.info("intent.rebroadcast", intent_id=record.id, nonce=attempt.nonce, tx_hash=attempt.tx_hash)
        return self._send(record, attempt, tick, resend=attempt.status is AttemptStatus.BROADCAST)

    def _replace(
        self, record: IntentRecord, previous: Attempt, tick: _Tick, kind: AttemptKind, estimate: int | None = None
    ) -> IntentRecord:
        assert record.nonce is not None
        if kind == "cancel":
            gas_limit = CANCEL_GAS
        else:
            gas_limit = max(previous.gas_limit, gas_limit_for(estimate or 0, record.intent.gas_limit, self._margin))
        legacy = _fees_of(previous).legacy
        market = self._market(tick, "high" if kind == "cancel" else record.intent.urgency, legacy=legacy)
        # out-bid EVERY attempt at this nonce, refused ones included: bumping from the last live one alone signs
        # the same bytes again after a refused replacement (and nodes refuse those again)
        at_nonce = [_fees_of(a) for a in self.store.attempts(record.id) if a.nonce == record.nonce]
        old = bump_base(at_nonce or [_fees_of(previous)], legacy)
        decision = replacement_fees(old, market, gas_limit, self.config.gas, self._next_base_fee(tick))
        if self._held_by_cap(record, decision):
            return record
        assert decision.fees is not None
        attempt = self._sign_and_store(
            record,
            tick,
            nonce=record.nonce,
            kind=kind,
            fees=decision.fees,
            gas_limit=gas_limit,
            expected=State.BROADCAST,
        )
        if attempt is None:
            return record
        self.metrics.inc("cancels" if kind == "cancel" else "replacements", reason=record.cancel_reason or "stuck")
        self._persisted(f"{kind}_signed", record)
        return self._send(record, attempt, tick)

    def _cancel(self, record: IntentRecord, latest: Attempt, tick: _Tick, reason: str) -> IntentRecord:
        _log.info("intent.cancelling", intent_id=record.id, nonce=record.nonce, reason=reason)
        record = self.store.transition(record.id, State.BROADCAST, State.BROADCAST, cancel_reason=reason)
        return self._replace(record, latest, tick, "cancel")

    def _held_by_cap(self, record: IntentRecord, decision: CapDecision) -> bool:
        if not decision.wait:
            if record.id in self._waiting:
                self._waiting.discard(record.id)
                _log.info("intent.fee_cap_cleared", intent_id=record.id)
            return False
        self.metrics.inc("fee_cap_waits", reason="cap")
        if record.id not in self._waiting:
            self._waiting.add(record.id)
            self._raise_alert("fee_cap", f"intent {record.id} waits: {decision.reason}")
        return True

    # --- helpers: chain state -----------------------------------------------------------------------------------
    def _find_receipt(self, attempts: list[Attempt]) -> tuple[Attempt, Receipt] | None:
        for attempt in reversed(attempts):
            receipt = self.chain.receipt(attempt.tx_hash)
            if receipt is not None:
                return attempt, receipt
        return None

    def _mark_mined(self, record: IntentRecord, attempt: Attempt, receipt: Receipt) -> IntentRecord:
        outcome = self._outcome(record, attempt, receipt)
        reason: dict[str, Any] = {}
        if outcome == "reverted":
            decoded = self._replay_revert(record, attempt, receipt)
            reason["error"] = f"reverted on chain: {decoded.describe()}"[:500]
        for other in self.store.attempts(record.id):
            if other.id == attempt.id:
                self.store.mark_attempt(other.id, AttemptStatus.MINED)
            elif other.status in (AttemptStatus.BROADCAST, AttemptStatus.SIGNED, AttemptStatus.MINED):
                self.store.mark_attempt(other.id, AttemptStatus.REPLACED)
        record = self.store.transition(
            record.id,
            record.state,
            State.MINED,
            mined_block=receipt.block_number,
            mined_block_hash=receipt.block_hash,
            mined_tx_hash=receipt.tx_hash,
            outcome=outcome,
            nonce_lost_block=None,
            **reason,
        )
        _log.info(
            "intent.mined",
            intent_id=record.id,
            nonce=record.nonce,
            tx_hash=receipt.tx_hash,
            block=receipt.block_number,
            outcome=outcome,
        )
        self._persisted("mined", record)
        return record

    def _replay_revert(self, record: IntentRecord, attempt: Attempt, receipt: Receipt) -> DecodedRevert:
        """Why a mined transaction reverted: replay its call on the state before its block (block − 1), then, if
        that passes (a transaction earlier in the same block changed the state), on the mined block's state.
        Decoded from abis/, logged (`intent.mined_revert`) and counted (`mined_reverts`, label `error` = the
        error's name: bounded by the ABIs; when neither replay reverts, `OutOfGas` if the receipt used at least
        63/64 of the gas limit (the replay runs without the limit), else `NotReproduced`, e.g. a check on the
        block's timestamp). A failing replay never stops the pipeline."""
        intent = record.intent
        call = CallRequest(self.sender, intent.to, intent.data, intent.value)
        decoded = DecodedRevert("NotReproduced", ())
        if receipt.gas_used is not None and receipt.gas_used * 64 >= attempt.gas_limit * 63:  # 63/64: EIP-150
            decoded = DecodedRevert("OutOfGas", (receipt.gas_used, attempt.gas_limit), arg_names=("used", "limit"))
        for block in (receipt.block_number - 1, receipt.block_number):
            try:
                sim = self.chain.simulate(call, block)
            except ReadError as exc:
                _log.warning("intent.mined_revert: replay failed", intent_id=record.id, block=block, error=str(exc))
                continue
            if not sim.ok:
                decoded = self.decoder.decode(sim.revert_data or b"")
                break
        self.last_revert[record.id] = decoded
        self.metrics.inc("mined_reverts", error=decoded.name[:64])
        _log.warning(
            "intent.mined_revert",
            intent_id=record.id,
            tx_hash=receipt.tx_hash,
            block=receipt.block_number,
            error_name=decoded.name,
            error=decoded.describe()[:500],
        )
        return decoded

    def _outcome(self, record: IntentRecord, attempt: Attempt, receipt: Receipt) -> Outcome:
        if attempt.kind == "cancel":
            return "cancelled"
        if receipt.status != 1:
            return "reverted"
        event = record.intent.expected_event
        if event is not None and not any(
            entry.address.lower() == event.address.lower()
            and entry.topics
            and entry.topics[0].lower() == event.topic0.lower()
            for entry in receipt.logs
        ):
            return "no_event"
        return "success"

    def _check_mined_or_lost(self, record: IntentRecord, tick: _Tick) -> IntentRecord:
        """The chain moved past our nonce. One of our attempts mined → mined. None of ours found for
        `nonce_lost_grace_blocks` → the nonce was used by a foreign transaction: release it and start over."""
        found = self._find_receipt(self.store.attempts(record.id))
        if found is not None:
            return self._mark_mined(record, *found)
        if record.state not in (State.SIGNED, State.BROADCAST):
            return record
        head = tick.head.number
        if record.nonce_lost_block is None:
            # first sighting; SIGNED moves to BROADCAST here (its bytes may be out there), stamping the block
            return self.store.transition(record.id, record.state, State.BROADCAST, nonce_lost_block=head)
        if head - record.nonce_lost_block < self.config.nonce_lost_grace_blocks:
            return record
        # release only once the chain state that used the nonce is final: a lagging endpoint that cannot find
        # our receipt yet must never make us send the same effect at a second nonce
        try:
            final_count = self.chain.nonce(self.sender, "finalized")
        except ReadError:
            final_count = 0  # no finality tag: never auto-release, the alert below asks for an operator
        if final_count <= (record.nonce or 0):
            if head - record.nonce_lost_block == self.config.nonce_lost_grace_blocks:
                self._raise_alert("nonce_lost", f"intent {record.id}: nonce {record.nonce} used, no receipt of ours")
            return record
        for attempt in self.store.attempts(record.id):
            if attempt.status is not AttemptStatus.REJECTED:
                self.store.mark_attempt(attempt.id, AttemptStatus.REJECTED)
        self._raise_alert("nonce_lost", f"intent {record.id}: nonce {record.nonce} used by a transaction not ours")
        return self.store.transition(
            record.id,
            record.state,
            State.SIMULATED,
            nonce=None,
            nonce_lost_block=None,
            simulated_block=None,
            error="nonce used by a foreign transaction; re-sending at a new nonce",
        )

    def _reorged(self, record: IntentRecord, tick: _Tick) -> IntentRecord:
        self.metrics.inc("reorgs", reason="receipt_gone")
        _log.warning("intent.reorged", intent_id=record.id, nonce=record.nonce, tx_hash=record.mined_tx_hash)
        for attempt in self.store.attempts(record.id):
            if attempt.status is AttemptStatus.MINED:  # the one the chain had: re-sent as is if the node lost it
                self.store.mark_attempt(attempt.id, AttemptStatus.BROADCAST)
        record = self.store.transition(
            record.id,
            record.state,
            State.BROADCAST,
            mined_block=None,
            mined_block_hash=None,
            mined_tx_hash=None,
            outcome=None,
        )
        self._persisted("reorged", record)
        return record

    def _fill_gaps(self, tick: _Tick) -> None:
        held = self.store.held_nonces(self.sender, tick.latest_nonce)
        numbers = {n for n, _, _ in held}
        for nonce in range(tick.latest_nonce, max(numbers, default=tick.latest_nonce - 1) + 1):
            if nonce not in numbers:
                self._fill_gap(nonce, tick)

    def _gap_exists(self, tick: _Tick) -> bool:
        numbers = {n for n, _, _ in self.store.held_nonces(self.sender, tick.latest_nonce)}
        return any(n not in numbers for n in range(tick.latest_nonce, max(numbers, default=-1) + 1))

    def _fill_gap(self, nonce: int, tick: _Tick) -> None:
        for generation in range(1000):
            key = f"gap:{self.sender.lower()}:{nonce}:{generation}"
            existing = self.store.get_by_key(key)
            if existing is not None and not existing.terminal:
                return
            if existing is None:
                break
        self.metrics.inc("nonce_gaps_filled", reason="gap")
        _log.warning("nonce.gap", nonce=nonce, latest_nonce=tick.latest_nonce)
        self.submit(Intent(idempotency_key=key, to=self.sender, urgency="high", kind="gap_fill"), tick.head.number)

    def _simulate(self, record: IntentRecord, head: int) -> Simulation:
        intent = record.intent
        return self.chain.simulate(CallRequest(self.sender, intent.to, intent.data, intent.value), head)

    def _log_revert(self, record: IntentRecord, sim: Simulation) -> DecodedRevert:
        decoded = self.decoder.decode(sim.revert_data or b"")
        self.last_revert[record.id] = decoded
        self.metrics.inc("simulation_reverts", reason="revert")
        _log.warning("intent.would_revert", intent_id=record.id, error=decoded.describe()[:500])
        return decoded

    def _reverted_before_send(self, record: IntentRecord, sim: Simulation) -> IntentRecord:
        decoded = self._log_revert(record, sim)
        return self._finish(record, State.FAILED, error=f"would revert: {decoded.describe()}"[:500], nonce=None)

    def _finish(self, record: IntentRecord, state: State, **fields: Any) -> IntentRecord:
        if record.nonce is None:
            fields.pop("nonce", None)
        record = self.store.transition(record.id, record.state, state, **fields)
        self._waiting.discard(record.id)
        self._private_failures.pop(record.id, None)
        self._went_public.discard(record.id)
        self.metrics.inc("results", result=state.value)
        _log.info("intent.done", intent_id=record.id, state=state.value, nonce=record.nonce, outcome=record.outcome)
        self._persisted(state.value, record)
        return record

    def _expired(self, record: IntentRecord, head: int) -> bool:
        deadline = record.intent.deadline_block
        return deadline is not None and head > deadline

    def _new_tick(self) -> _Tick:
        head = self.chain.block("latest")
        if head is None:
            raise ReadError("eth_getBlockByNumber(latest): no block")
        return _Tick(head=head, latest_nonce=self.chain.nonce(self.sender, head.number))

    def _market(self, tick: _Tick, speed: Speed, legacy: bool | None) -> Fees:
        if not tick.fee_history_done and not self.config.force_legacy:
            percentiles = tuple(sorted(set(self.config.gas.percentiles.values())))
            history = self.chain.fee_history(self.config.gas.history_blocks, percentiles)
            tick.fee_history_done = True
            if history is not None:
                for name in self.config.gas.percentiles:
                    tick.fees_1559[name] = market_fees(history, self.config.gas, name)  # type: ignore[arg-type]
                tick.next_base_fee = history.next_base_fee
        use_legacy = legacy if legacy is not None else (self.config.force_legacy or not tick.fees_1559)
        if not use_legacy:
            return tick.fees_1559[speed]
        if tick.legacy_price is None:
            tick.legacy_price = self.chain.gas_price()
        return legacy_fees(tick.legacy_price, speed)

    def _next_base_fee(self, tick: _Tick) -> int:
        if tick.next_base_fee is not None:
            return tick.next_base_fee
        return tick.head.base_fee or 0

    @property
    def _margin(self) -> int:
        return self.config.gas_limit_margin_percent

    def _persisted(self, label: str, record: IntentRecord) -> None:
        if self._on_persist is not None:
            self._on_persist(label, record)

    def _raise_alert(self, kind: str, message: str) -> None:
        self.metrics.inc("alerts", reason=kind)
        _log.warning("alert", alert=kind, detail=message)
        if self._alert is not None:
            self._alert(kind, message)


def _current(attempts: list[Attempt]) -> Attempt | None:
    """The attempt to watch and re-send: the newest that may still be (or be put) in a mempool, else the newest
    superseded one. Refused attempts are never current."""
    live = [a for a in attempts if a.status in (AttemptStatus.SIGNED, AttemptStatus.BROADCAST, AttemptStatus.MINED)]
    if live:
        return live[-1]
    replaced = [a for a in attempts if a.status is AttemptStatus.REPLACED]
    return replaced[-1] if replaced else None


def _fees_of(attempt: Attempt) -> Fees:
    if attempt.gas_price is not None:
        return Fees(gas_price=attempt.gas_price)
    assert attempt.max_fee is not None and attempt.priority_fee is not None
    return Fees(max_fee=attempt.max_fee, priority_fee=attempt.priority_fee)
