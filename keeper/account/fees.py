"""The rebalance fee ledger within each vault: what each vault's own cost of a rebalance is, and who bears it.

Owns the rules that connect an `AttributionRecord` to the `Ledger` (keeper/account/ledger.py). Pure: no
web3, no clock, no I/O; the daemon reads the positions from chain and stores the results.

* One pool per vault (`pool_id(v)` = "vault:<v>"). Its cost for rebalance n is that vault's **own**
  attributed cost — its GMX fee value plus its gas share — so a vault that opposed the net (no fee) bears
  only its gas share, and a vault absent from the order bears nothing (its pool records no rebalance).
* Cost unit: micro-USD. `vault_costs` adds the fee value (USD × 1e30, as attributed) and the gas share at
  the ETH mark (wei × USD × 1e30 per ETH / 1e18) exactly, then rounds the sum down once per vault: at most
  one micro-USD per vault and rebalance is not charged (the attribution record keeps the exact units).
* Holders: the vault's depositor accounts, position = their shares held at the rebalance (`sharesOf` plus
  shares queued for withdrawal, which still bear the vault's costs until paid). Shares no known depositor
  accounts for are held by `VAULT_HOLDER` (the vault itself), so positions always sum to the vault's total
  shares; a vault with no shares at all is its own single holder (position 1).
* Settlement happens when a holder's position changes: before recording rebalance n, `apply_rebalance`
  moves every holder to its position at n (`change_position` settles it first, at its old position, for
  every rebalance since it last settled). A holder that opened after rebalance n−1 is not charged for it; a
  holder that left before n is not charged for n. `statement` shows, per holder, what it has been charged
  and what it owes (what settling everyone now would charge, `settle_all` on a copy): together they are
  exactly the pool's total cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from keeper.account.attribution import AttributionRecord
from keeper.account.ledger import Ledger, Pool, change_position, record_rebalance, settle_all

MICRO_USD = 10**24  # USD × 1e30 → micro-USD
VAULT_HOLDER = "vault"  # the vault itself: holds the shares no known depositor accounts for
CHARGE_VERSION = 1


def pool_id(vault_id: int) -> str:
    return f"vault:{vault_id}"


def vault_costs(record: AttributionRecord, eth_price_usd30: int) -> dict[int, int]:
    """Each vault's own cost of the rebalance, micro-USD (fee value + gas at the ETH mark; sum rounded down)."""
    if eth_price_usd30 < 0:
        raise ValueError("eth_price_usd30 must not be negative")
    return {
        v.vault_id: (v.fee_usd30 * 10**18 + v.gas_wei * eth_price_usd30) // (10**18 * MICRO_USD)
        for v in record.vaults
    }


def holder_positions(total_shares: int, depositors: Mapping[str, int]) -> dict[str, int]:
    """Positions of one vault at a rebalance: the depositors' shares, the rest held by the vault itself.

    Raises ValueError when the depositors hold more than the vault's total (an inconsistent read)."""
    held = {h: s for h, s in depositors.items() if s > 0}
    if any(s < 0 for s in depositors.values()):
        raise ValueError("negative depositor shares")
    rest = total_shares - sum(held.values())
    if rest < 0:
        raise ValueError(f"depositors hold {sum(held.values())} shares of {total_shares}")
    if rest > 0:
        held[VAULT_HOLDER] = rest
    return held or {VAULT_HOLDER: 1}


@dataclass(frozen=True)
class RebalanceCharge:
    """What one accounted rebalance did to one vault's pool: its cost, the positions it was charged on and the
    charges the settlements it triggered made (holder → micro-USD)."""

    rebalance_id: int
    vault_id: int
    cost: int
    positions: tuple[tuple[str, int], ...]
    settled: tuple[tuple[str, int], ...]
    version: int = CHARGE_VERSION

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "rebalance_id": self.rebalance_id,
            "vault_id": self.vault_id,
            "cost": self.cost,
            "positions": [list(p) for p in self.positions],
            "settled": [list(s) for s in self.settled],
        }


def _move_to(ledger: Ledger, pid: str, positions: Mapping[str, int]) -> tuple[Ledger, dict[str, int]]:
    """Every holder of the pool to its new position (absent = 0); each change settles the holder first."""
    charges: dict[str, int] = {}
    current = {h.holder_id: h.position for h in ledger.pool(pid).holders}
    for holder in sorted(set(current) | set(positions)):
        delta = positions.get(holder, 0) - current.get(holder, 0)
        if delta:
            ledger, charge = change_position(ledger, pid, holder, delta)
            if charge:
                charges[holder] = charge
    return ledger, charges


def apply_rebalance(
    ledger: Ledger,
    rebalance_id: int,
    costs: Mapping[int, int],
    positions: Mapping[int, Mapping[str, int]],
) -> tuple[Ledger, list[RebalanceCharge]]:
    """Record rebalance `rebalance_id` in every vault's pool: move the holders to their positions at the
    rebalance (settling those that change), then record the vault's own cost. A vault without positions
    is its own single holder."""
    out: list[RebalanceCharge] = []
    for vault_id in sorted(costs):
        pid = pool_id(vault_id)
        held = {h: p for h, p in positions.get(vault_id, {}).items() if p > 0} or {VAULT_HOLDER: 1}
        ledger, settled = _move_to(ledger, pid, held)
        ledger, _ = record_rebalance(ledger, pid, costs[vault_id])
        out.append(
            RebalanceCharge(
                rebalance_id, vault_id, costs[vault_id], tuple(sorted(held.items())), tuple(sorted(settled.items()))
            )
        )
    return ledger, out


def statement(pool: Pool) -> dict[str, dict[str, int]]:
    """Per holder: `charged` so far and `owed` (what settling everyone now charges). Σ (charged + owed) is
    exactly the pool's total cost."""
    if not pool.holders:
        return {}
    _, owed = settle_all(Ledger((pool,)), pool.pool_id)
    return {h.holder_id: {"charged": h.charged, "owed": owed.get(h.holder_id, 0)} for h in pool.holders}


def statements(ledger: Ledger, pools: Iterable[str] | None = None) -> dict[str, dict[str, dict[str, int]]]:
    wanted = set(pools) if pools is not None else None
    return {p.pool_id: statement(p) for p in ledger.pools if wanted is None or p.pool_id in wanted}
