"""The oracle guard: is each asset's price fit to trade on? Pure (no web3, no clock, no I/O).

Sources per asset: the Chainlink feed answer and GMX's min and max price (a third source optional).
The guard uses their median; it refuses the asset — no trade for anything that depends on it — when
the feed is stale (`updatedAt` older than its heartbeat at the snapshot's block time), any source is
non-positive, or the sources disagree by more than `max_divergence_bps` (max/min − 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from keeper.snapshot import Asset, Snapshot, feed_price_usd30
from keeper.units import BPS


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
