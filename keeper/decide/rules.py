"""Per-vault decision rules: every threshold of the decision core, with the issue's defaults.

Owns the `Rules` dataclass and its validation (an InputError names the rule and the reason). Must not
read configuration files, the clock or the chain: the daemon builds `Rules` from its configuration.
Units: bps = 1/10,000; health factors × 1e18 (WAD); durations in seconds; USD in whole dollars.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from keeper.errors import InputError

DriftPolicy = Literal["fixed", "bands"]
DAY = 86_400
HOUR = 3_600


@dataclass(frozen=True)
class Rules:
    """One vault's rules. Defaults are the issue's numbers; every one is configurable per vault."""

    # delta drift (policy "fixed"): |current hedge / target hedge − 1| > drift_bps
    drift_bps: int = 500
    drift_policy: DriftPolicy = "fixed"
    # net OI, per vault: |OI now − OI applied| / max(|OI applied|, floor) ≥ oi_drift_bps continuously for
    # oi_drift_seconds, with floor = oi_drift_floor_bps of the asset's GMX pool amount (tokens): near-zero OI
    # applied cannot turn a tiny absolute move into a huge relative drift
    oi_drift_bps: int = 500
    oi_drift_seconds: int = 2 * HOUR
    oi_drift_floor_bps: int = 1_000
    # health factor: trigger strictly below hf_trigger_wad, refit to hf_target_wad
    hf_trigger_wad: int = 12 * 10**17
    hf_target_wad: int = 15 * 10**17
    # hedge PnL since the last profit settlement ≥ hedge_pnl_bps of equity → profit rebalance
    hedge_pnl_bps: int = 500
    # recurring cycle (harvest → hedge → profit) this long after `manager.last_cycle_at`
    cycle_seconds: int = 48 * HOUR
    # volatility bands (policy "bands"): x = max(band_min_inner_bps, inner_mult·σ), y = max(band_min_outer_bps,
    # outer_mult·σ, x + 1) with σ the relative standard deviation of the asset's GLP weight over band_window
    band_inner_mult_bps: int = 20_000  # 2σ
    band_outer_mult_bps: int = 40_000  # 4σ
    band_min_inner_bps: int = 250
    band_min_outer_bps: int = 1_000
    band_window_seconds: int = 30 * DAY
    band_sample_seconds: int = HOUR
    band_min_samples: int = 24
    # cost gate: a non-urgent rebalance is deferred when gas + GLP fees > cost_gate_bps of the corrected notional
    cost_gate_bps: int = 100
    gas_units_per_rebalance: int = 1_500_000
    gas_price_wei: int = 10**9
    gas_asset: str = "WETH"
    # per-rebalance cap on |change| × price per asset (debt and collateral legs), whole USD
    notional_cap_usd: int = 1_000_000
    # buffer band: outside [min, max] bps of equity the next fit moves the buffer back to target
    buffer_target_bps: int = 500
    buffer_min_bps: int = 200
    buffer_max_bps: int = 1_000
    # trader OI hedge ratio h = trader_oi_hedge_bps / 10,000
    trader_oi_hedge_bps: int = 10_000
    # the hedged volatile assets (symbols); stables other than the denomination are always hedged
    hedged_assets: tuple[str, ...] = ("WETH", "WBTC")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and value < 0:
                raise InputError(f"rules.{f.name}", f"must not be negative, got {value}")
        if self.drift_policy not in ("fixed", "bands"):
            raise InputError("rules.drift_policy", f"must be 'fixed' or 'bands', got {self.drift_policy!r}")
        if self.hf_target_wad <= 10**18:
            raise InputError("rules.hf_target_wad", "target health factor must exceed 1.0")
        if self.hf_trigger_wad > self.hf_target_wad:
            raise InputError("rules.hf_trigger_wad", "trigger must not exceed the target health factor")
        if self.band_outer_mult_bps <= self.band_inner_mult_bps:
            raise InputError("rules.band_outer_mult_bps", "outer multiplier must exceed the inner one")
        if self.band_min_outer_bps <= self.band_min_inner_bps:
            raise InputError("rules.band_min_outer_bps", "outer minimum must exceed the inner one")
        if not self.buffer_min_bps <= self.buffer_target_bps <= self.buffer_max_bps < 10_000:
            raise InputError("rules.buffer_target_bps", "need buffer_min ≤ buffer_target ≤ buffer_max < 10,000")
        if self.trader_oi_hedge_bps > 10_000:
            raise InputError("rules.trader_oi_hedge_bps", "must be ≤ 10,000")
        if self.cycle_seconds == 0 or self.band_sample_seconds == 0:
            raise InputError("rules.cycle_seconds", "durations must be positive")
