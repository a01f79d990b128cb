"""The leveraged-LP strategy in the daemon: each block, every configured LYF position is read, its
triggers evaluated and, when due, its rebalance handed to the same execution pipeline as the vaults.

Owns the LYF shell: the one-call read (keeper.chain.lyf_reader), the feed staleness guard, the trigger
memory (last rebalance price and time, in the journal's state table so restarts neither repeat nor skip
a rebalance), the calldata and intent, the accounting of finished LYF intents and the `keeper_lyf_*`
metrics. Decisions are keeper.decide.lyf (pure). The daemon's switches apply unchanged: pause, dry run,
leadership (only the leader submits), the allow-list, one unmined rebalance at a time and the hourly
rate limit. Must not sign or send: the pipeline does.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from web3 import Web3

from keeper import log
from keeper.chain.artifacts import abi as load_abi
from keeper.chain.lyf_reader import LyfSnapshot, read_lyf_snapshot
from keeper.config import LyfPositionSettings
from keeper.daemon.journal import unaccounted
from keeper.decide.lyf import BPS, LyfPlan, LyfRules, LyfState, plan, position, triggers
from keeper.errors import InputError
from keeper.store.model import ExpectedEvent, Intent, idempotency_key

if TYPE_CHECKING:
    from keeper.daemon.app import KeeperApp

_log = log.get(__name__)

MEMORY = "lyf-memory"  # + ":<name>": {"price": [num, den], "at": timestamp}
PENDING = "lyf-pending"  # + ":<intent id>": what the rebalance expected
ACCOUNTED = "lyf-accounted"
REBALANCED = "Rebalanced(uint256,int256,uint256,int256,uint256,uint256,int256)"


@dataclass(frozen=True)
class LyfTarget:
    """The addresses keeper.chain.lyf_reader needs for one position."""

    name: str
    position: str
    pair: str
    volatile: str
    stable: str
    feed: str
    multicall: str


def rules_of(p: LyfPositionSettings) -> LyfRules:
    return LyfRules(
        target_leverage_bps=p.target_leverage_bps, leverage_band_bps=p.leverage_band_bps,
        price_move_bps=p.price_move_bps, delta_tolerance_bps=p.delta_tolerance_bps, slippage_bps=p.slippage_bps,
        deadline_seconds=p.deadline_seconds, cost_gate_bps=p.cost_gate_bps,
    )


def rebalance_args(p: LyfPlan, deadline: int) -> tuple[int, int, int, int, int, int]:
    """`LyfPosition.rebalance` arguments: a volatile→stable swap is passed as a negative stableToSwap."""
    swap = p.stable_to_swap if p.stable_to_swap else -p.volatile_to_swap
    return (p.lp_to_remove, swap, p.min_out, p.repay_stable, p.repay_volatile, deadline)


def out_of_bounds(p: LyfPlan, snap: LyfSnapshot) -> str | None:
    """Why the plan's outcome is outside the position contract's bounds (it would revert), or None."""
    leverage_bps = p.final_leverage * BPS
    if leverage_bps < snap.min_leverage_bps:
        return f"leverage: {float(p.final_leverage):.4f}x below the bound {snap.min_leverage_bps / BPS:.2f}x"
    if leverage_bps > snap.max_leverage_bps:
        return f"leverage: {float(p.final_leverage):.4f}x above the bound {snap.max_leverage_bps / BPS:.2f}x"
    if abs(p.final_delta) > snap.max_delta_units:
        return f"delta: {p.final_delta} units beyond the bound {snap.max_delta_units}"
    return None


def trigger_kind(reason: str) -> str:
    """A bounded metric label for a trigger reason produced by keeper.decide.lyf.triggers."""
    for kind in ("leverage", "price", "delta", "deadline"):
        if reason.startswith(kind):
            return kind
    return "other"


class LyfJob:
    """Every configured LYF position, ticked by the daemon after the vaults."""

    def __init__(self, app: KeeperApp) -> None:
        self.app = app
        multicall = app.cfg.contracts.multicall
        self.positions = [
            (LyfTarget(p.name, p.position, p.pair, p.volatile, p.stable, p.feed, multicall), p, rules_of(p))
            for p in app.cfg.lyf.positions
        ]
        self._contract = Web3().eth.contract(abi=load_abi("LyfPosition"))
        self._selector = bytes.fromhex(self._contract.encode_abi("rebalance", [0, 0, 0, 0, 0, 0])[2:10])
        self._topic = "0x" + Web3.keccak(text=REBALANCED).hex().removeprefix("0x")
        self.last_state: dict[str, LyfState] = {}
        self._hold_until: dict[str, int] = {}  # position → block: no new plan before it (after a failure)
        self._blocked: dict[str, str] = {}  # position → why its plan cannot reach the bounds (logged once)

    # --- allow-list --------------------------------------------------------------------------------------------
    def allows(self, to: str, data: bytes, configured: set[str]) -> bool:
        """A position's `rebalance` (or, when safety.allowed_selectors is set, only the selectors listed)."""
        if to.lower() not in {t.position.lower() for t, _, _ in self.positions}:
            return False
        return data[:4].hex() in configured if configured else data[:4] == self._selector

    # --- memory ------------------------------------------------------------------------------------------------
    def memory(self, name: str) -> tuple[Fraction | None, int | None]:
        text = self.app.store.get_state(f"{MEMORY}:{name}")
        if text is None:
            return None, None
        data = json.loads(text)
        return Fraction(int(data["price"][0]), int(data["price"][1])), int(data["at"])

    def remember(self, name: str, price: Fraction, at: int) -> None:
        document = {"price": [price.numerator, price.denominator], "at": at}
        self.app.store.put_state(f"{MEMORY}:{name}", json.dumps(document, sort_keys=True))

    # --- the tick ----------------------------------------------------------------------------------------------
    def tick(self, block: int) -> None:
        for target, settings, rules in self.positions:
            with log.bound(position=target.name):
                try:
                    self._tick_one(target, settings, rules, block)
                except InputError as exc:  # e.g. an insolvent position: nothing the keeper can plan
                    self.app.metrics.lyf_rebalances.labels(position=target.name, result="unplannable").inc()
                    _log.error("LYF position cannot be planned", error=str(exc)[:300])

    def _tick_one(self, target: LyfTarget, settings: LyfPositionSettings, rules: LyfRules, block: int) -> None:
        app, m = self.app, self.app.metrics
        snap = read_lyf_snapshot(app.endpoints.w3(), target, block)
        state, now = snap.state, snap.block_timestamp
        self.last_state[target.name] = state
        pos = position(state)
        m.lyf_leverage.labels(position=target.name).set(float(pos.leverage))
        m.lyf_delta_ratio.labels(position=target.name).set(
            float(pos.delta / state.debt_volatile) if state.debt_volatile else 0.0
        )
        stale = now - snap.feed_updated_at > settings.feed_heartbeat_seconds
        m.lyf_oracle_stale.labels(position=target.name).set(1 if stale else 0)
        last_price, last_at = self.memory(target.name)
        leading = app._leading()
        if last_price is None or last_at is None:  # first sight: the position is taken as fitted now
            if leading:
                self.remember(target.name, state.price, now)
            return
        gas = self._gas_cost_stable(settings, snap.stable_decimals)
        verdict = triggers(state, rules, last_price, now=now, last_rebalance_at=last_at, gas_cost_stable=gas)
        if not verdict.fired:
            m.lyf_blocked.labels(position=target.name).set(0)
            self._blocked.pop(target.name, None)
            if verdict.reasons:
                _log.info("LYF rebalance deferred", reasons=list(verdict.reasons))
            return
        if stale:
            _log.warning("LYF oracle is stale: no trade", updated_at=snap.feed_updated_at, block_time=now)
            return
        if block < self._hold_until.get(target.name, 0):
            return
        if not leading:
            _log.info("standby: LYF plan not submitted", leader=app.leadership.holder)
            return
        if app._rebalance_in_flight():
            _log.info("a rebalance is in flight; LYF waits for it")
            return
        if app._rate_limited(now, urgent=any(r.startswith(("leverage", "deadline")) for r in verdict.reasons)):
            return
        p = plan(state, rules)
        blocked = out_of_bounds(p, snap)
        m.lyf_blocked.labels(position=target.name).set(1 if blocked else 0)
        if blocked is not None:
            if self._blocked.get(target.name) != blocked.split(":")[0]:
                m.lyf_rebalances.labels(position=target.name, result="out_of_bounds").inc()
                _log.warning("LYF rebalance cannot reach the position's bounds: not sent (re-lever or widen the "
                             "bounds)", why=blocked, reasons=list(verdict.reasons))
            self._blocked[target.name] = blocked.split(":")[0]
            return
        self._blocked.pop(target.name, None)
        self._submit(target, settings, p, state, now=now, block=block, reasons=verdict.reasons)

    def _gas_cost_stable(self, settings: LyfPositionSettings, stable_decimals: int) -> int:
        """The rebalance's gas for the cost gate, in stable units (rounded up), at the last GLP snapshot's
        ETH price and the configured gas price; 0 without an ETH price."""
        snap = self.app._last_snapshot
        eth = None if snap is None else next((a for a in snap.assets if a.symbol == "WETH"), None)
        if eth is None or eth.feed_answer <= 0:
            return 0
        usd = Fraction(settings.gas_units * settings.gas_price_wei * eth.feed_answer, 10 ** (18 + eth.feed_decimals))
        scale: int = 10**stable_decimals
        return -math.floor(-usd * scale)

    def _submit(self, target: LyfTarget, settings: LyfPositionSettings, p: LyfPlan, state: LyfState, *,
                now: int, block: int, reasons: tuple[str, ...]) -> None:
        app, m = self.app, self.app.metrics
        data = bytes.fromhex(
            self._contract.encode_abi("rebalance", list(rebalance_args(p, now + settings.tx_deadline_seconds)))[2:]
        )
        if not app._allowed(target.position, data):
            m.lyf_rebalances.labels(position=target.name, result="not_allowed").inc()
            _log.error("allow-list refused the LYF transaction", to=target.position)
            return
        if app.cfg.safety.dry_run or app.signer is None:
            ok = app._dry_run(target.position, data, block)
            m.lyf_rebalances.labels(position=target.name, result="dry_run_ok" if ok else "dry_run_revert").inc()
            return
        intent = Intent(
            idempotency_key=idempotency_key(f"lyf:{target.name}:{block}", target.position, data, 0),
            to=target.position,
            data=data,
            deadline_block=block + max(10, settings.tx_deadline_seconds // 2),
            expected_event=ExpectedEvent(self._topic, target.position),
            urgency="high" if any(r.startswith("leverage") for r in reasons) else "normal",
        )
        record = app.pipeline.submit(intent, head=block)
        app._submitted.append(now)
        kinds = sorted({trigger_kind(r) for r in reasons})
        pending = {
            "position": target.name,
            "price": [state.price.numerator, state.price.denominator],
            "at": now,
            "triggers": kinds,
            "expected_leverage": str(p.final_leverage),
        }
        app.store.put_state(f"{PENDING}:{record.id}", json.dumps(pending, sort_keys=True))
        for kind in kinds:
            m.lyf_triggers.labels(position=target.name, trigger=kind).inc()
        _log.info(
            "LYF rebalance submitted", intent_id=record.id, reasons=list(reasons), lp_to_remove=p.lp_to_remove,
            stable_to_swap=p.stable_to_swap, volatile_to_swap=p.volatile_to_swap, repay_stable=p.repay_stable,
            repay_volatile=p.repay_volatile, final_leverage=f"{float(p.final_leverage):.6f}",
            slippage_bps=f"{float(p.slippage_bps):.2f}",
        )

    # --- accounting --------------------------------------------------------------------------------------------
    def account(self, head: int) -> None:
        """Each finished LYF intent once: on success the trigger memory moves to its price and time; after a
        failure the position is not planned again for `retry_after_blocks` (no intent per block)."""
        app = self.app
        for record, text in unaccounted(app.store, app._keeper_address(), PENDING, ACCOUNTED):
            pending: dict[str, Any] = json.loads(text)
            name = str(pending["position"])
            result = "success" if record.outcome == "success" else (record.outcome or record.state.value)
            if result == "success":
                price = Fraction(int(pending["price"][0]), int(pending["price"][1]))
                self.remember(name, price, int(pending["at"]))
                _log.info("LYF rebalance took effect", position=name, intent_id=record.id)
            else:
                retry = next((p.retry_after_blocks for _, p, _ in self.positions if p.name == name), 10)
                self._hold_until[name] = head + retry
                _log.warning("LYF rebalance did not take effect", position=name, intent_id=record.id,
                             state=record.state.value, outcome=record.outcome, error=record.error,
                             retry_after_block=head + retry)
            app.metrics.lyf_rebalances.labels(position=name, result=result).inc()
            app.store.put_state(f"{ACCOUNTED}:{record.id}", result)

