"""Keeper memory: reading and updating the persisted `Memory` (defined in keeper.snapshot, which carries it).

Owns the pure update rules of each memory field: keyed tuples stay sorted, updates return a new
Memory and never mutate. Must not read the clock (every timestamp comes from the snapshot), do I/O or
import web3. What each field means: `keeper.snapshot.Memory`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TypeVar

from keeper.snapshot import Memory

K = TypeVar("K", str, int)

__all__ = ["Memory", "drop", "lookup", "put", "record_weight", "weight_series"]


def lookup(pairs: Iterable[tuple[K, int]], key: K) -> int | None:
    for k, v in pairs:
        if k == key:
            return v
    return None


def put(pairs: tuple[tuple[K, int], ...], key: K, value: int) -> tuple[tuple[K, int], ...]:
    return tuple(sorted([(k, v) for k, v in pairs if k != key] + [(key, value)]))


def drop(pairs: tuple[tuple[K, int], ...], key: K) -> tuple[tuple[K, int], ...]:
    return tuple((k, v) for k, v in pairs if k != key)


def record_weight(mem: Memory, symbol: str, at: int, ppm: int, *, every: int, window: int) -> Memory:
    """Append a weight sample if the last one of `symbol` is at least `every` seconds old; forget samples
    older than `window` (all assets)."""
    last = max((t for s, t, _ in mem.weights if s == symbol), default=None)
    rows = [(s, t, w) for s, t, w in mem.weights if at - t <= window]
    if last is None or at - last >= every:
        rows.append((symbol, at, ppm))
    return replace(mem, weights=tuple(sorted(rows)))


def weight_series(mem: Memory, symbol: str, *, now: int, window: int) -> tuple[int, ...]:
    """The samples (ppm) of `symbol` within the window, oldest first."""
    return tuple(w for s, t, w in sorted(mem.weights, key=lambda r: r[1]) if s == symbol and now - t <= window)
