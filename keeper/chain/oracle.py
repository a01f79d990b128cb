"""The oracle guard: is each asset's price fit to trade on, and at what price? Pure (no web3, no clock, no I/O).

Sources per asset: the Chainlink feed answer and GMX's min and max price (a third source optional).
The guard uses their median; it refuses the asset — no trade for anything that depends on it — when
the feed is stale (`updatedAt` older than its heartbeat at the snapshot's block time), any source is
non-positive, or the sources disagree by more than `max_divergence_bps` (max/min − 1).

`priced(snapshot, verdicts)` is the snapshot the decision core and netting see: every accepted asset's
Chainlink fields carry the guard's median instead of the raw answer. The conversion is exact: the median
is an integer in USD × 1e30 per whole token, and the copy carries it as an answer with 30 decimals, so
`feed_price_usd30` of the copy *is* the median (no rounding; only the median of an even number of
sources rounds, down, in `median`). Refused assets keep their raw fields (nothing trades on them).
Book equities stay as read: they mirror `VaultManager.equityUsd`, which prices at the feeds.

`blocking(refused, touched, glp_dependent=...)`: GLP's price and composition depend on every pool
asset, so any refused asset (a stale stablecoin feed included) blocks every plan that trades GLP or
sizes hedges from it, not only the legs in that asset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, replace

from keeper.snapshot import Asset, Snapshot, feed_price_usd30
from keeper.units import BPS

MEDIAN_DECIMALS = 30  # the priced snapshot's answers are USD × 1e30 (exact copies of the median)


@dataclass(frozen=True)
class OracleRules:
    heartbeat_seconds: int = 3600 + 300  # Chainlink ETH/USD on Arbitrum: 24h; devnet feeds: 1h (+ slack)
    max_divergence_bps: int = 100


@dataclass(frozen=True)
class Verdict:
    symbol: str
    ok: bool
    price_usd30: int  # the median of the sources (0 when refused for non-positive input)
    reasons: tuple[str, ...]  # machine-friendly reason codes: stale, non_positive, divergence

    @property
    def detail(self) -> str:
        return ", ".join(self.reasons) or "ok"


def median(values: Sequence[int]) -> int:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) // 2  # rounds down; only with an even source count


def check_asset(asset: Asset, now: int, rules: OracleRules, extra: Sequence[int] = ()) -> Verdict:
    sources = [feed_price_usd30(asset), asset.gmx_min_price, asset.gmx_max_price, *extra]
    reasons: list[str] = []
    if now - asset.feed_updated_at > rules.heartbeat_seconds:
        reasons.append("stale")
    if any(p <= 0 for p in sources):
        reasons.append("non_positive")
        return Verdict(asset.symbol, False, 0, tuple(reasons))
    low, high = min(sources), max(sources)
    if (high - low) * BPS > rules.max_divergence_bps * low:
        reasons.append("divergence")
    return Verdict(asset.symbol, not reasons, median(sources), tuple(reasons))


def check(
    snapshot: Snapshot, rules: Mapping[str, OracleRules], default: OracleRules = OracleRules()
) -> dict[str, Verdict]:
    """A verdict for every asset of the snapshot, at the snapshot's block time."""
    return {
        a.symbol: check_asset(a, snapshot.block_timestamp, rules.get(a.symbol, default)) for a in snapshot.assets
    }


def priced(snapshot: Snapshot, verdicts: Mapping[str, Verdict]) -> Snapshot:
    """The snapshot with each accepted asset's feed answer replaced by the guard's median (exact, see above)."""
    assets = tuple(
        replace(a, feed_answer=v.price_usd30, feed_decimals=MEDIAN_DECIMALS)
        if (v := verdicts.get(a.symbol)) is not None and v.ok
        else a
        for a in snapshot.assets
    )
    return replace(snapshot, assets=assets)


def blocking(refused: Set[str], touched: Set[str], *, glp_dependent: bool) -> set[str]:
    """The refused assets that stop a plan: all of them when the plan trades GLP or sizes hedges from GLP's
    composition (its price depends on every pool asset), else those the plan moves."""
    return set(refused) if glp_dependent else set(refused) & set(touched)
