"""The daemon's side of the rebalance fee ledger: depositor positions from chain, the ledger in the journal.

Owns (1) discovering each vault's depositor accounts from `Deposited` logs (scanned incrementally; the
cursor and the accounts are kept in the journal), (2) reading their positions at a rebalance — `sharesOf`
plus shares queued for withdrawal, at the block before the rebalance was mined, in one `aggregate3` call
— and (3) applying `keeper.account.apply_rebalance` once per rebalance id, persisting the charge records
(`fee.charge`, append-once) and then the ledger document (`fee.ledger`, which `keeper fees` reads).

A depositor scan that fails (a provider refusing the log range) never stops accounting: the shares no
known account holds are borne by the vault itself (`keeper.account.VAULT_HOLDER`), so the ledger still
conserves the cost, and the next rebalance retries the scan. Must not decide or send anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from eth_utils.address import to_checksum_address
from web3 import Web3

from keeper import log
from keeper.account import (
    AttributionRecord,
    Ledger,
    RebalanceCharge,
    apply_rebalance,
    holder_positions,
    ledger_from_json_dict,
    ledger_to_json_dict,
    pool_id,
    statements,
    vault_costs,
)
from keeper.chain.reader import Call, multicall
from keeper.store import Store

_log = log.get("keeper.daemon.fees")

LEDGER_KEY = "fee.ledger"
DEPOSITORS_KEY = "fee.depositors"
CHARGE = "fee.charge"
UNIT = "micro-USD"
LOG_CHUNK_BLOCKS = 10_000
_DEPOSITED = "0x" + Web3.keccak(text="Deposited(uint256,address,uint256,uint256)").hex().removeprefix("0x")
_BOOK = "(uint8,uint256,uint256[],uint256[],uint256[],uint256,uint256,uint256)"


class FeeLedger:
    """The fee ledger of the keeper's journal (one pool per vault, depositors as holders)."""

    def __init__(self, store: Store, vault_manager: str, multicall_address: str, *, start_block: int = 0) -> None:
        self.store = store
        self.vault_manager = to_checksum_address(vault_manager)
        self.multicall = to_checksum_address(multicall_address)
        self.start_block = start_block

    # --- the stored documents ----------------------------------------------------------------------------------
    def document(self) -> dict[str, Any] | None:
        text = self.store.get_state(LEDGER_KEY)
        return None if text is None else dict(json.loads(text))

    def load(self) -> Ledger:
        doc = self.document()
        return Ledger() if doc is None else ledger_from_json_dict(doc["ledger"])

    def last_rebalance_id(self) -> int:
        doc = self.document()
        return -1 if doc is None else int(doc["last_rebalance_id"])

    def charges(self) -> list[RebalanceCharge]:
        out = []
        for _, text in self.store.records(CHARGE):
            d = json.loads(text)
            out.append(RebalanceCharge(int(d["rebalance_id"]), int(d["vault_id"]), int(d["cost"]),
                                       tuple((str(h), int(p)) for h, p in d["positions"]),
                                       tuple((str(h), int(c)) for h, c in d["settled"])))
        return out

    def _depositors(self) -> tuple[int, dict[int, list[str]]]:
        text = self.store.get_state(DEPOSITORS_KEY)
        if text is None:
            return self.start_block - 1, {}
        d = json.loads(text)
        return int(d["scanned_to"]), {int(v): list(users) for v, users in d["depositors"].items()}

    # --- chain reads --------------------------------------------------------------------------------------------
    def scan_depositors(self, w3: Web3, to_block: int) -> dict[int, list[str]]:
        """Depositor accounts per vault from `Deposited` logs up to `to_block` (incremental, persisted)."""
        scanned, known = self._depositors()
        found = {v: set(users) for v, users in known.items()}
        start = scanned + 1
        while start <= to_block:
            end = min(start + LOG_CHUNK_BLOCKS - 1, to_block)
            try:
                logs = w3.eth.get_logs(
                    {"address": self.vault_manager, "topics": [_DEPOSITED], "fromBlock": start, "toBlock": end}
                )
            except Exception as exc:
                _log.warning("depositor scan failed; unknown shares are borne by the vault itself until it succeeds",
                             from_block=start, to_block=end, error=f"{exc.__class__.__name__}: {exc}"[:200])
                break
            for entry in logs:
                topics = entry["topics"]
                vault = int.from_bytes(bytes(topics[1]), "big")
                user = to_checksum_address(bytes(topics[2])[-20:])
                found.setdefault(vault, set()).add(user)
            scanned = end
            start = end + 1
        document = {"scanned_to": scanned, "depositors": {str(v): sorted(u) for v, u in sorted(found.items())}}
        self.store.put_state(DEPOSITORS_KEY, json.dumps(document, sort_keys=True))
        return {v: sorted(u) for v, u in found.items()}

    def positions(self, w3: Web3, vault_ids: Iterable[int], block: int) -> dict[int, dict[str, int]]:
        """Each vault's holder positions at `block` (shares; the unaccounted rest held by the vault)."""
        vaults = sorted(set(vault_ids))
        depositors = self.scan_depositors(w3, block)
        calls: list[Call] = []
        for v in vaults:
            calls.append(Call(self.vault_manager, "getBook(uint256)", (v,), (_BOOK,)))
            calls.append(Call(self.vault_manager, "pendingWithdrawals(uint256)", (v,), ("(address,uint256)[]",)))
            calls += [
                Call(self.vault_manager, "sharesOf(uint256,address)", (v, u)) for u in depositors.get(v, [])
            ]
        answers = iter(multicall(w3, self.multicall, calls, block))
        out: dict[int, dict[str, int]] = {}
        for v in vaults:
            (book,) = next(answers)
            (queue,) = next(answers)
            held: dict[str, int] = {}
            for u in depositors.get(v, []):
                held[u] = next(answers)[0]
            for user, shares in queue:
                key = to_checksum_address(user)
                held[key] = held.get(key, 0) + int(shares)
            try:
                out[v] = holder_positions(int(book[7]), held)
            except ValueError as exc:
                _log.error("depositor positions inconsistent; the vault bears its cost itself", vault=v,
                           error=str(exc))
                out[v] = holder_positions(int(book[7]), {})
        return out

    # --- applying a rebalance -----------------------------------------------------------------------------------
    def charge(self, attribution: AttributionRecord, eth_price_usd30: int,
               positions: Mapping[int, Mapping[str, int]]) -> list[RebalanceCharge]:
        """Apply one accounted rebalance (once per rebalance id): charge records first, the ledger last."""
        if attribution.rebalance_id <= self.last_rebalance_id():
            return []
        costs = vault_costs(attribution, eth_price_usd30)
        ledger, charges = apply_rebalance(self.load(), attribution.rebalance_id, costs, positions)
        for c in charges:
            self.store.add_record(CHARGE, f"{c.rebalance_id:010d}:{c.vault_id:06d}",
                                  json.dumps(c.to_json_dict(), sort_keys=True))
        document = {
            "last_rebalance_id": attribution.rebalance_id,
            "unit": UNIT,
            "ledger": ledger_to_json_dict(ledger),
            "statement": statements(ledger),
        }
        self.store.put_state(LEDGER_KEY, json.dumps(document, sort_keys=True))
        for c in charges:
            with log.bound(vault=c.vault_id):
                _log.info("fee ledger: rebalance charged", rebalance_id=c.rebalance_id, cost_micro_usd=c.cost,
                          holders=len(c.positions), settled_micro_usd=sum(x for _, x in c.settled))
        return charges

    def totals(self) -> dict[int, tuple[int, int]]:
        """vault id → (total cost, total charged so far), micro-USD."""
        out = {}
        for p in self.load().pools:
            if p.pool_id.startswith("vault:"):
                out[int(p.pool_id.split(":", 1)[1])] = (p.total_cost, p.total_charged)
        return out


__all__ = ["CHARGE", "DEPOSITORS_KEY", "LEDGER_KEY", "UNIT", "FeeLedger", "pool_id"]
