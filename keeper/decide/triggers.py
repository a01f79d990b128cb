"""Triggers: each one a pure function of numbers → a `TriggerResult` (fired or not, with the value, the
threshold, the unit and since when).

Owns the comparison rules (strict or inclusive, documented per trigger in docs/decision.md §5) and the
volatility band widths. Must not read the clock, the chain or memory directly: callers pass numbers in.
Values are exact Fractions, shown as Decimal strings (no floats).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Literal

from keeper.decide.rules import Rules
from keeper.units import BPS, WAD

Action = Literal["none", "cycle", "hedge", "profit", "process", "halt", "defer"]
INFINITE = "inf"


@dataclass(frozen=True)
class TriggerResult:
    """One evaluation. `scope`: "account", "vault:<id>", "asset:<symbol>" or "vault:<id>:<symbol>"."""

    trigger: str
    scope: str
    fired: bool
    action: Action
    value: str
    threshold: str
    unit: str
    since: int | None = None
    detail: str = ""

    def reason(self) -> str:
        since = f" since {self.since}" if self.since is not None else ""
        state = "FIRED" if self.fired else "ok"
        return f"{self.trigger}[{self.scope}] {state}: {self.value} vs {self.threshold} {self.unit}{since}"


def show(value: Fraction | None, places: int = 4) -> str:
    """A Fraction as a Decimal string rounded half-even to `places` (display only); None → "inf"."""
    if value is None:
        return INFINITE
    with localcontext() as ctx:
        whole = abs(value.numerator) // value.denominator
        ctx.prec = 80 + len(str(whole)) + places  # enough digits for any uint256-sized value and its places
        quotient = Decimal(value.numerator) / Decimal(value.denominator)
        return format(quotient.quantize(Decimal(1).scaleb(-places)).normalize(), "f")


def cycle(now: int, last_cycle_at: int, cycle_seconds: int) -> TriggerResult:
    """Fires when now − last_cycle_at ≥ cycle_seconds (inclusive: due exactly at 48h)."""
    elapsed = now - last_cycle_at
    fired = elapsed >= cycle_seconds
    return TriggerResult("cycle", "account", fired, "cycle" if fired else "none", str(elapsed), str(cycle_seconds),
                         "s", last_cycle_at, "recurring cycle: harvest → hedge → profit")


def delta_drift(vault_id: int, symbol: str, drift: Fraction | None, drift_bps: int) -> TriggerResult:
    """Fires when |current hedge / target hedge − 1| > drift_bps (strict: exactly 5% does not fire)."""
    fired = drift is None or drift * BPS > drift_bps
    return TriggerResult("delta_drift", f"vault:{vault_id}:{symbol}", fired, "hedge" if fired else "none",
                         show(None if drift is None else drift * BPS), str(drift_bps), "bps")


def oi_drift_ratio(oi_now: Fraction, oi_applied: int, floor: Fraction | int = 0) -> Fraction | None:
    """|h·OI_now − h·OI_applied| / max(|h·OI_applied|, h·floor) (h cancels); None = infinite (denominator 0 and
    now ≠ applied). `floor` (token units, ≥ 0): the smallest denominator, so a near-zero applied OI cannot turn a
    tiny absolute move into a huge relative drift (the decision core passes `oi_drift_floor_bps` of the pool)."""
    base = max(Fraction(abs(oi_applied)), Fraction(floor))
    if base == 0:
        return Fraction(0) if oi_now == oi_applied else None
    return abs(oi_now - oi_applied) / base


def net_oi(
    symbol: str, drift: Fraction | None, since: int | None, *, now: int, drift_bps: int, hold_seconds: int,
    vault_id: int | None = None,
) -> tuple[TriggerResult, int | None]:
    """Net OI drift ≥ drift_bps (inclusive) continuously for ≥ hold_seconds (inclusive). Returns the result
    and the new "since" to persist: kept while the drift stays, set to `now` when it starts, None when it falls back.
    With `vault_id` the result is that vault's own timer (scope "vault:<id>:<symbol>"), else "asset:<symbol>"."""
    drifting = drift is None or drift * BPS >= drift_bps
    new_since = (since if since is not None else now) if drifting else None
    fired = new_since is not None and now - new_since >= hold_seconds
    held = 0 if new_since is None else now - new_since
    scope = f"asset:{symbol}" if vault_id is None else f"vault:{vault_id}:{symbol}"
    return (
        TriggerResult("net_oi", scope, fired, "hedge" if fired else "none",
                      show(None if drift is None else drift * BPS), str(drift_bps), "bps", new_since,
                      f"held {held}s of {hold_seconds}s"),
        new_since,
    )


def net_oi_summary(symbol: str, per_vault: Sequence[TriggerResult], drifts: Sequence[Fraction | None]
                   ) -> TriggerResult:
    """The asset-level view of the per-vault net-OI timers (what the OI metrics export): value = the worst drift,
    threshold = the smallest, since = the earliest running timer; fired iff some vault's own timer fired."""
    worst: Fraction | None = None if None in drifts else max((d for d in drifts if d is not None), default=Fraction(0))
    running = [r.since for r in per_vault if r.since is not None]
    fired = [r.scope.split(":")[1] for r in per_vault if r.fired]
    threshold = min((int(r.threshold) for r in per_vault), default=0)
    detail = f"fired for vault(s) {', '.join(fired)}" if fired else f"{len(running)} vault timer(s) running"
    return TriggerResult("net_oi", f"asset:{symbol}", bool(fired), "hedge" if fired else "none",
                         show(None if worst is None else worst * BPS), str(threshold), "bps",
                         min(running, default=None), detail)


def health_factor(hf_wad: int, trigger_wad: int) -> TriggerResult:
    """Fires when the account health factor (× 1e18) is strictly below the trigger (1.2 does not fire)."""
    fired = hf_wad < trigger_wad
    return TriggerResult("health_factor", "account", fired, "hedge" if fired else "none",
                         show(Fraction(hf_wad, WAD), 6) if hf_wad < 2**255 else INFINITE,
                         show(Fraction(trigger_wad, WAD), 6), "x")


def hedge_pnl(vault_id: int, pnl_usd30: int, equity_usd30: Fraction, pnl_bps: int) -> TriggerResult:
    """Fires when |hedge PnL since the last profit settlement| ≥ pnl_bps of equity (inclusive)."""
    if equity_usd30 <= 0:
        ratio: Fraction | None = Fraction(0) if pnl_usd30 == 0 else None
    else:
        ratio = abs(Fraction(pnl_usd30)) / equity_usd30
    fired = pnl_usd30 != 0 and (ratio is None or ratio * BPS >= pnl_bps)
    kind = "profit" if pnl_usd30 > 0 else "loss"
    return TriggerResult("hedge_pnl", f"vault:{vault_id}", fired, "profit" if fired else "none",
                         show(None if ratio is None else ratio * BPS), str(pnl_bps), "bps of equity",
                         detail=f"{kind} {show(Fraction(pnl_usd30, 10**30), 2)} USD")


def band_widths(series: Sequence[int], rules: Rules) -> tuple[int, int, Fraction | None]:
    """(inner x, outer y) in bps and σ_rel (None without enough history).
    σ_rel = population standard deviation / mean of the weight samples; x = max(min_inner, ⌈k_in·σ⌉),
    y = max(min_outer, ⌈k_out·σ⌉, x + 1). Rounded up: a wider band trades and halts less."""
    if len(series) < max(rules.band_min_samples, 2) or sum(series) <= 0:
        return rules.band_min_inner_bps, max(rules.band_min_outer_bps, rules.band_min_inner_bps + 1), None
    n = len(series)
    mean = Fraction(sum(series), n)
    var = sum(((w - mean) ** 2 for w in series), Fraction(0)) / n
    with localcontext() as ctx:
        ctx.prec = 60
        sd = (Decimal(var.numerator) / Decimal(var.denominator)).sqrt()
        rel = Fraction(sd) / mean
    inner = max(rules.band_min_inner_bps, math.ceil(rel * rules.band_inner_mult_bps))
    outer = max(rules.band_min_outer_bps, math.ceil(rel * rules.band_outer_mult_bps), inner + 1)
    return inner, outer, rel


def band(
    vault_id: int, symbol: str, deviation: Fraction | None, *, inner_bps: int, outer_bps: int,
    halted_since: int | None, acknowledged: bool, now: int,
) -> TriggerResult:
    """|deviation| ≤ x: nothing; x < |deviation| ≤ y: rebalance; > y: halt (unless acknowledged, then rebalance)."""
    dev_bps = None if deviation is None else abs(deviation) * BPS
    beyond = dev_bps is None or dev_bps > outer_bps
    scope = f"vault:{vault_id}:{symbol}"
    shown = show(dev_bps)
    threshold = f"{inner_bps}/{outer_bps}"
    if beyond and not acknowledged:
        since = halted_since if halted_since is not None else now
        return TriggerResult("band", scope, True, "halt", shown, threshold, "bps", since,
                             "beyond the outer band: possible oracle fault or manipulation; no trade until it "
                             "returns or an operator acknowledges")
    if beyond or (dev_bps is not None and dev_bps > inner_bps):
        detail = "acknowledged by operator" if beyond else "between inner and outer band"
        return TriggerResult("band", scope, True, "hedge", shown, threshold, "bps", detail=detail)
    return TriggerResult("band", scope, False, "none", shown, threshold, "bps")


def partial(vault_id: int, gap_usd30: Fraction) -> TriggerResult:
    """Always fires: the vault's last rebalance was capped (λ < 1), so it continues this tick until the uncapped
    target is reached, whatever the drift (the gap left may be below the drift threshold). Not gated."""
    return TriggerResult("partial", f"vault:{vault_id}", True, "hedge", show(gap_usd30 / 10**30, 2), "0",
                         "USD to the uncapped target",
                         detail="the last rebalance was capped by a per-rebalance limit: continue")


def cost_gate(vault_id: int, cost_usd30: Fraction, corrected_usd30: Fraction, share_bps: int, *,
              urgent: bool) -> TriggerResult:
    """Fires (defers) when cost > share_bps of the corrected notional (strict) and nothing urgent overrides."""
    ratio = None if corrected_usd30 <= 0 else cost_usd30 / corrected_usd30
    over = ratio is None or ratio * BPS > share_bps
    fired = over and not urgent
    return TriggerResult("cost_gate", f"vault:{vault_id}", fired, "defer" if fired else "none",
                         show(None if ratio is None else ratio * BPS), str(share_bps), "bps of corrected notional",
                         detail=("overridden by health factor / cycle" if over and urgent else
                                 f"cost {show(cost_usd30 / 10**30, 2)} USD on {show(corrected_usd30 / 10**30, 2)} USD"))
