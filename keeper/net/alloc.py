"""Integer pro-rata splits with explicit remainder rules. Pure; no floats.

Two rules live here and nowhere else:

* `split_largest_remainder` — the keeper's own rule (netting shares, fee and gas attribution):
  every key gets floor(total × w / W); the leftover units (fewer than the number of keys) go one each
  to the keys with the largest fractional remainder, ties to the lowest key. Shares differ from the
  exact rational share by less than one unit and sum exactly to `total`.
* `split_contract` — `VaultManager`'s surplus rule: floor for everyone, the whole remainder to the key
  with the largest weight (lowest key on a tie).

Weights may be ints or Fractions (converted exactly to a common denominator). Keys sort with `<`.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from math import lcm
from typing import TypeVar

K = TypeVar("K", int, str)


def _as_ints(weights: Mapping[K, int | Fraction]) -> dict[K, int]:
    fracs = {k: Fraction(w) for k, w in weights.items()}
    if any(w < 0 for w in fracs.values()):
        raise ValueError("negative weight")
    den = lcm(*(f.denominator for f in fracs.values())) if fracs else 1
    return {k: int(f * den) for k, f in fracs.items()}


def split_largest_remainder(total: int, weights: Mapping[K, int | Fraction]) -> dict[K, int]:
    """Split `total` (>= 0) pro rata to `weights`; exact sum; largest remainder, ties to the lowest key."""
    if total < 0:
        raise ValueError("total must be >= 0")
    w = _as_ints(weights)
    denom = sum(w.values())
    if total == 0:
        return dict.fromkeys(w, 0)
    if denom == 0:
        raise ValueError("cannot split a positive total over zero weights")
    shares = {k: total * wk // denom for k, wk in w.items()}
    left = total - sum(shares.values())
    order = sorted(w, key=lambda k: (-(total * w[k] % denom), k))
    for k in order[:left]:
        shares[k] += 1
    return shares


def split_contract(total: int, weights: Mapping[K, int]) -> dict[K, int]:
    """VaultManager's surplus split: floor pro rata, remainder to the largest weight (lowest key on a tie)."""
    if total < 0:
        raise ValueError("total must be >= 0")
    if any(wk < 0 for wk in weights.values()):
        raise ValueError("negative weight")
    denom = sum(weights.values())
    if total == 0:
        return dict.fromkeys(weights, 0)
    if denom == 0:
        raise ValueError("cannot split a positive total over zero weights")
    shares = {k: total * wk // denom for k, wk in weights.items()}
    top = min(weights, key=lambda k: (-weights[k], k))
    shares[top] += total - sum(shares.values())
    return shares
