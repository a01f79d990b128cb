"""The rebalance fee ledger: the cost of rebalance n is borne by what was held at rebalance n.

Owns a pure, persistable state machine (`Ledger`) with one `Pool` per cost-bearing position (the shared
account with vaults as holders, or one vault with depositor accounts as holders) and the functions that
move it: `record_rebalance`, `change_position`, `settle`, `settle_all`. Must not import web3, read the
clock or do I/O; the daemon stores `ledger_to_json_dict(state)` and reloads it after a restart.

Math (docs/netting.md has a worked example). S = ACC_SCALE. Per pool:
* acc[r] — growth accumulator after rebalance r, in cost units × S per position unit (acc[0] = 0); the
  tuple is the cache of the accumulator at every rebalance id, `counter` = len(acc) − 1;
* record_rebalance(cost): x = cost × S + carry; acc[r] = acc[r−1] + x // total_position;
  carry = x mod total_position (scaled cost not yet in acc, carried into the next rebalance: rounds down,
  never lost);
* holder h: position, settled_at (rebalance id of its last settlement), residue (scaled cost owed but not
  yet charged as a whole unit; may be negative after `settle_all` = prepaid dust) and charged;
* settle(h): owed = residue + position × (acc[counter] − acc[settled_at]); charge = max(owed // S, 0)
  (down; never a refund); residue = owed − charge × S; settled_at = counter. A position changes only
  through `change_position`, which settles first, so a holder pays exactly for the rebalances during
  which it held its position, and a holder opened after rebalance r starts at settled_at >= r;
* invariant: S × total_cost == S × total_charged + Σ residue + carry. `settle_all` settles everyone and
  charges the remaining whole units (total_cost − total_charged) one each to the holders with the largest
  positive residue (ties: lowest holder id), after which total_charged == total_cost exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

ACC_SCALE = 10**36
LEDGER_VERSION = 1


class LedgerError(ValueError):
    """An impossible ledger operation (negative position, cost with nobody holding, unknown pool)."""


@dataclass(frozen=True)
class Holder:
    holder_id: str
    position: int
    settled_at: int
    residue: int
    charged: int


@dataclass(frozen=True)
class Pool:
    pool_id: str
    acc: tuple[int, ...]
    carry: int
    total_position: int
    total_cost: int
    total_charged: int
    holders: tuple[Holder, ...]

    @property
    def counter(self) -> int:
        """Number of rebalances recorded (the id of the latest one)."""
        return len(self.acc) - 1

    def holder(self, holder_id: str) -> Holder | None:
        for h in self.holders:
            if h.holder_id == holder_id:
                return h
        return None


@dataclass(frozen=True)
class Ledger:
    pools: tuple[Pool, ...] = ()
    version: int = LEDGER_VERSION

    def pool(self, pool_id: str) -> Pool:
        for p in self.pools:
            if p.pool_id == pool_id:
                return p
        return Pool(pool_id, (0,), 0, 0, 0, 0, ())


def _put_pool(ledger: Ledger, pool: Pool) -> Ledger:
    others = tuple(p for p in ledger.pools if p.pool_id != pool.pool_id)
    return replace(ledger, pools=tuple(sorted((*others, pool), key=lambda p: p.pool_id)))


def _put_holder(pool: Pool, holder: Holder) -> Pool:
    others = tuple(h for h in pool.holders if h.holder_id != holder.holder_id)
    return replace(pool, holders=tuple(sorted((*others, holder), key=lambda h: h.holder_id)))


def record_rebalance(ledger: Ledger, pool_id: str, cost: int) -> tuple[Ledger, int]:
    """Record the cost (>= 0, integer units) of one rebalance; returns the new state and its rebalance id."""
    if cost < 0:
        raise LedgerError("cost must be >= 0")
    pool = ledger.pool(pool_id)
    if cost > 0 and pool.total_position == 0:
        raise LedgerError(f"pool {pool_id}: a cost of {cost} with no position held")
    x = cost * ACC_SCALE + pool.carry
    inc, carry = divmod(x, pool.total_position) if pool.total_position else (0, pool.carry)
    pool = replace(pool, acc=(*pool.acc, pool.acc[-1] + inc), carry=carry, total_cost=pool.total_cost + cost)
    return _put_pool(ledger, pool), pool.counter


def _settle(pool: Pool, holder_id: str) -> tuple[Pool, int]:
    h = pool.holder(holder_id) or Holder(holder_id, 0, pool.counter, 0, 0)
    owed = h.residue + h.position * (pool.acc[-1] - pool.acc[h.settled_at])
    charge = max(owed // ACC_SCALE, 0)  # never a refund: prepaid dust (residue < 0) waits for new cost
    residue = owed - charge * ACC_SCALE
    h = replace(h, settled_at=pool.counter, residue=residue, charged=h.charged + charge)
    pool = replace(_put_holder(pool, h), total_charged=pool.total_charged + charge)
    return pool, charge


def settle(ledger: Ledger, pool_id: str, holder_id: str) -> tuple[Ledger, int]:
    """Charge the holder for every rebalance since it last settled; returns the state and the charge."""
    pool, charge = _settle(ledger.pool(pool_id), holder_id)
    return _put_pool(ledger, pool), charge


def change_position(ledger: Ledger, pool_id: str, holder_id: str, delta: int) -> tuple[Ledger, int]:
    """Settle the holder at the old position, then move its position by `delta` (the result must be >= 0)."""
    pool, charge = _settle(ledger.pool(pool_id), holder_id)
    h = pool.holder(holder_id)
    assert h is not None
    if h.position + delta < 0:
        raise LedgerError(f"pool {pool_id}: position of {holder_id} would go negative")
    pool = _put_holder(pool, replace(h, position=h.position + delta))
    pool = replace(pool, total_position=pool.total_position + delta)
    return _put_pool(ledger, pool), charge


def settle_all(ledger: Ledger, pool_id: str) -> tuple[Ledger, dict[str, int]]:
    """Settle every holder and charge the leftover whole units (largest residue, ties lowest id), so that
    total_charged == total_cost afterwards. Returns the state and each holder's charge."""
    pool = ledger.pool(pool_id)
    charges: dict[str, int] = {}
    for h in pool.holders:
        pool, charges[h.holder_id] = _settle(pool, h.holder_id)
    dust = pool.total_cost - pool.total_charged
    ranked = sorted(pool.holders, key=lambda h: (-h.residue, h.holder_id))
    eligible = [h for h in ranked if h.residue > 0] or ranked
    if dust > 0 and not eligible:
        raise LedgerError(f"pool {pool_id}: {dust} units of cost and no holder")
    for k in range(dust):
        target = pool.holder(eligible[k % len(eligible)].holder_id)
        assert target is not None
        pool = _put_holder(pool, replace(target, residue=target.residue - ACC_SCALE, charged=target.charged + 1))
        charges[target.holder_id] += 1
    pool = replace(pool, total_charged=pool.total_charged + max(dust, 0))
    return _put_pool(ledger, pool), charges


def ledger_to_json_dict(ledger: Ledger) -> dict[str, Any]:
    return {
        "version": ledger.version,
        "pools": [
            {
                "pool_id": p.pool_id,
                "acc": list(p.acc),
                "carry": p.carry,
                "total_position": p.total_position,
                "total_cost": p.total_cost,
                "total_charged": p.total_charged,
                "holders": [
                    {
                        "holder_id": h.holder_id,
                        "position": h.position,
                        "settled_at": h.settled_at,
                        "residue": h.residue,
                        "charged": h.charged,
                    }
                    for h in p.holders
                ],
            }
            for p in ledger.pools
        ],
    }


def _i(data: Mapping[str, Any], key: str) -> int:
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise LedgerError(f"{key}: expected an integer")
    return v


def ledger_from_json_dict(data: Mapping[str, Any]) -> Ledger:
    """Inverse of `ledger_to_json_dict`; re-checks the conservation invariant of every pool."""
    if _i(data, "version") != LEDGER_VERSION:
        raise LedgerError(f"unsupported ledger version {data['version']}")
    pools = []
    for p in data["pools"]:
        acc = p["acc"]
        if not isinstance(acc, list) or not acc or any(isinstance(x, bool) or not isinstance(x, int) for x in acc):
            raise LedgerError("acc: expected a non-empty list of integers")
        holders = tuple(
            Holder(str(h["holder_id"]), _i(h, "position"), _i(h, "settled_at"), _i(h, "residue"), _i(h, "charged"))
            for h in p["holders"]
        )
        pool = Pool(
            pool_id=str(p["pool_id"]),
            acc=tuple(acc),
            carry=_i(p, "carry"),
            total_position=_i(p, "total_position"),
            total_cost=_i(p, "total_cost"),
            total_charged=_i(p, "total_charged"),
            holders=holders,
        )
        check_invariant(pool)
        pools.append(pool)
    return Ledger(pools=tuple(pools))


def outstanding(pool: Pool) -> int:
    """Scaled cost not yet charged: Σ residue + carry + Σ unsettled position × Δacc."""
    unsettled = sum(h.position * (pool.acc[-1] - pool.acc[h.settled_at]) for h in pool.holders)
    return sum(h.residue for h in pool.holders) + pool.carry + unsettled


def check_invariant(pool: Pool) -> None:
    """S × total_cost == S × total_charged + outstanding; positions sum to total_position."""
    if sum(h.position for h in pool.holders) != pool.total_position:
        raise LedgerError(f"pool {pool.pool_id}: positions do not sum to total_position")
    if any(not 0 <= h.settled_at <= pool.counter for h in pool.holders):
        raise LedgerError(f"pool {pool.pool_id}: settled_at out of range")
    if pool.total_cost * ACC_SCALE != pool.total_charged * ACC_SCALE + outstanding(pool):
        raise LedgerError(f"pool {pool.pool_id}: cost is not conserved")
    if sum(h.charged for h in pool.holders) != pool.total_charged:
        raise LedgerError(f"pool {pool.pool_id}: holder charges do not sum to total_charged")
