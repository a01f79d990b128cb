"""Gas pricing: EIP-1559 fees from eth_feeHistory, legacy fallback, replacement bumps and hard caps. Pure.

Rules (docs/execution.md):
* priority fee = the configured percentile of recent rewards (per speed), clamped to [floor, ceiling];
  max fee = next base fee × multiplier + priority fee.
* A replacement raises BOTH fee fields by at least 12.5% (rounded up) over the previous attempt, and never
  below the current market.
* Hard caps: max fee per gas <= `max_fee_cap`, and gas limit × max fee <= `max_tx_fee`. A fee above the cap is
  clamped to it only if the clamped transaction is still includable (cap >= next base fee) and, for a
  replacement, still a valid bump; otherwise the answer is WAIT. Nothing ever goes out above the cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Speed = Literal["low", "normal", "high"]

BUMP_NUMERATOR = 1125  # 12.5% over the previous attempt, the geth/erigon mempool minimum
BUMP_DENOMINATOR = 1000
GWEI = 10**9


@dataclass(frozen=True)
class FeeHistory:
    """eth_feeHistory: `base_fees` has one more entry than `rewards` (the next block's base fee is last)."""

    base_fees: tuple[int, ...]
    rewards: tuple[tuple[int, ...], ...]
    percentiles: tuple[float, ...]

    @property
    def next_base_fee(self) -> int:
        return self.base_fees[-1]


@dataclass(frozen=True)
class Fees:
    """EIP-1559 (max_fee, priority_fee) or legacy (gas_price)."""

    max_fee: int | None = None
    priority_fee: int | None = None
    gas_price: int | None = None

    def __post_init__(self) -> None:
        if self.gas_price is None:
            if self.max_fee is None or self.priority_fee is None:
                raise ValueError("fees: EIP-1559 needs max_fee and priority_fee")
            if self.priority_fee > self.max_fee or self.priority_fee < 0:
                raise ValueError("fees: priority_fee must be within [0, max_fee]")
        elif self.max_fee is not None or self.priority_fee is not None:
            raise ValueError("fees: legacy fees carry gas_price only")

    @property
    def legacy(self) -> bool:
        return self.gas_price is not None

    @property
    def per_gas_ceiling(self) -> int:
        """The most one unit of gas can cost with these fees."""
        value = self.gas_price if self.gas_price is not None else self.max_fee
        assert value is not None
        return value


@dataclass(frozen=True)
class GasPolicy:
    percentiles: dict[str, float] = field(default_factory=lambda: {"low": 10.0, "normal": 50.0, "high": 90.0})
    base_fee_multiplier_percent: int = 200
    priority_floor: int = GWEI // 10
    priority_ceiling: int = 50 * GWEI
    max_fee_cap: int = 500 * GWEI
    max_tx_fee: int = 10**17  # 0.1 ETH per transaction
    history_blocks: int = 10

    def percentile(self, speed: Speed) -> float:
        return self.percentiles[speed]

    def effective_cap(self, gas_limit: int) -> int:
        """The highest per-gas price allowed for a transaction with this gas limit."""
        return min(self.max_fee_cap, self.max_tx_fee // max(gas_limit, 1))


def _ceil_bump(value: int) -> int:
    return -(-value * BUMP_NUMERATOR // BUMP_DENOMINATOR)


def _percentile_priority(history: FeeHistory, percentile: float) -> int:
    try:
        column = history.percentiles.index(percentile)
    except ValueError:
        column = 0
    samples = sorted(r[column] for r in history.rewards if len(r) > column and r[column] > 0)
    if not samples:
        return 0
    return samples[len(samples) // 2]


def market_fees(history: FeeHistory, policy: GasPolicy, speed: Speed = "normal") -> Fees:
    """Fees that should be included soon at `speed` (median over blocks of the speed's reward percentile)."""
    priority = _percentile_priority(history, policy.percentile(speed))
    priority = min(max(priority, policy.priority_floor), policy.priority_ceiling)
    max_fee = history.next_base_fee * policy.base_fee_multiplier_percent // 100 + priority
    return Fees(max_fee=max_fee, priority_fee=priority)


def legacy_fees(gas_price: int, speed: Speed = "normal") -> Fees:
    """Legacy fallback: the node's gas price, +10% for high urgency."""
    return Fees(gas_price=gas_price * 11 // 10 if speed == "high" else gas_price)


def min_bump(old: Fees) -> Fees:
    """The cheapest valid replacement of `old`: both fee fields +12.5%, rounded up."""
    if old.gas_price is not None:
        return Fees(gas_price=_ceil_bump(old.gas_price))
    assert old.max_fee is not None and old.priority_fee is not None
    return Fees(max_fee=_ceil_bump(old.max_fee), priority_fee=_ceil_bump(old.priority_fee))


def bump_base(previous: Sequence[Fees], legacy: bool) -> Fees:
    """What a new attempt at a nonce must out-bid: the highest fees of EVERY earlier attempt at it, refused ones
    included (a node that refused an attempt holds something at least as expensive; bumping over less would
    sign the same bytes again). Field by field, so the bump clears each earlier attempt on both fields; a
    legacy gas price counts as both fee fields (as nodes compare them), so mixed histories stay safe.

    `legacy` picks the shape of the answer (the new attempt's transaction type)."""
    if not previous:
        raise ValueError("bump_base: no earlier attempt")
    max_fee = max(f.per_gas_ceiling for f in previous)
    if legacy:
        return Fees(gas_price=max_fee)
    priority = max(f.priority_fee if f.priority_fee is not None else f.per_gas_ceiling for f in previous)
    return Fees(max_fee=max_fee, priority_fee=priority)


def is_valid_bump(old: Fees, new: Fees) -> bool:
    need = min_bump(old)
    if need.gas_price is not None:
        return new.gas_price is not None and new.gas_price >= need.gas_price
    return (
        new.max_fee is not None
        and new.priority_fee is not None
        and new.max_fee >= (need.max_fee or 0)
        and new.priority_fee >= (need.priority_fee or 0)
    )


@dataclass(frozen=True)
class CapDecision:
    """`fees` to send, or `wait` with the reason (then nothing is sent)."""

    fees: Fees | None
    reason: str = ""

    @property
    def wait(self) -> bool:
        return self.fees is None


def cap_first_send(market: Fees, gas_limit: int, next_base_fee: int, policy: GasPolicy) -> CapDecision:
    cap = policy.effective_cap(gas_limit)
    if market.gas_price is not None:
        if market.gas_price <= cap:
            return CapDecision(market)
        return CapDecision(None, f"gas price {market.gas_price} above cap {cap}")
    assert market.max_fee is not None and market.priority_fee is not None
    if market.max_fee <= cap:
        return CapDecision(market)
    if cap < next_base_fee + min(market.priority_fee, policy.priority_floor):
        return CapDecision(None, f"next base fee {next_base_fee} leaves no room under cap {cap}")
    priority = min(market.priority_fee, cap - next_base_fee)
    return CapDecision(Fees(max_fee=cap, priority_fee=priority))


def replacement_fees(old: Fees, market: Fees, gas_limit: int, policy: GasPolicy, next_base_fee: int = 0) -> CapDecision:
    """Fees for a replacement of `old` at the same nonce: >= +12.5% on both fields, >= market, <= cap.

    WAIT when the cap forbids the bump, or when the capped fee could not be included in the next block anyway
    (below `next_base_fee`: nodes refuse it, and the previous attempt stays the one to wait for)."""
    cap = policy.effective_cap(gas_limit)
    need = min_bump(old)
    if need.gas_price is not None:
        price = max(need.gas_price, market.gas_price or market.max_fee or 0)
        price = min(price, cap)
        if price < need.gas_price:
            return CapDecision(None, f"bump to {need.gas_price} exceeds cap {cap}")
        if price < next_base_fee:
            return CapDecision(None, f"capped price {price} is below the next base fee {next_base_fee}")
        return CapDecision(Fees(gas_price=price))
    assert need.max_fee is not None and need.priority_fee is not None
    want_max = max(need.max_fee, market.max_fee or market.gas_price or 0)
    want_priority = max(need.priority_fee, market.priority_fee or 0)
    max_fee = min(want_max, cap)
    if max_fee < need.max_fee:
        return CapDecision(None, f"bump to {need.max_fee} exceeds cap {cap}")
    priority = min(want_priority, max_fee)
    if priority < need.priority_fee:
        return CapDecision(None, f"priority bump to {need.priority_fee} exceeds cap {cap}")
    if max_fee < next_base_fee:
        return CapDecision(None, f"capped fee {max_fee} is below the next base fee {next_base_fee}")
    return CapDecision(Fees(max_fee=max_fee, priority_fee=priority))


def gas_limit_for(estimate: int, hint: int | None, margin_percent: int = 120) -> int:
    """Estimate plus margin, never below the planner's hint."""
    padded = estimate * margin_percent // 100
    return max(padded, hint or 0)
