"""Audit a keeper journal (SQLite) against the chain: duplicates, lost intents, nonce gaps, effects.

`audit(journal, url, sender, first_nonce)` reads the journal file directly (read-only) and the node:

* duplicate executions: two journal intents with the same effect, more `Rebalanced` events from the
  keeper's transactions than successful call intents, or a successful call intent whose mined transaction
  does not carry exactly one `Rebalanced` event on the final chain (`effects_by_intent`: each effective once);
* lost intents: an intent not in a terminal state once the keeper settled, or an intent the chain executed
  (a mined transaction of ours) that the journal does not know;
* nonce gaps: the nonces the journal used must be exactly first_nonce .. chain nonce − 1, nothing pending.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from keeper.devnet.anvil import rpc

TERMINAL = ("finalized", "failed", "cancelled", "replaced")


@dataclass
class Audit:
    intents: int
    calls: int
    succeeded: int
    non_terminal: list[int]
    journal_nonces: list[int]
    chain_nonce: int
    pending_nonce: int
    first_nonce: int
    mined_hashes: list[str]
    effects_on_chain: int
    problems: list[str] = field(default_factory=list)
    effects_by_intent: dict[int, int] = field(default_factory=dict)  # intent id → Rebalanced events of its tx

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return (
            f"{self.intents} intents ({self.succeeded} succeeded), nonces {self.first_nonce}..{self.chain_nonce - 1}, "
            f"{self.effects_on_chain} effects on chain; problems: {self.problems or 'none'}"
        )


def _rebalanced_topic() -> str:
    from web3 import Web3

    return "0x" + Web3.keccak(text="Rebalanced(uint256,uint8,uint256)").hex().removeprefix("0x")


def audit(journal: Path, url: str, sender: str, first_nonce: int, *, vault_manager: str | None = None) -> Audit:
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT id, idempotency_key, kind, state, nonce, outcome, mined_tx_hash FROM intents "
            "WHERE lower(sender) = ?",
            (sender.lower(),),
        ).fetchall()
        attempts = conn.execute("SELECT intent_id, nonce, tx_hash FROM attempts").fetchall()
    finally:
        conn.close()
    chain_nonce = int(str(rpc(url, "eth_getTransactionCount", [sender, "latest"])), 16)
    pending_nonce = int(str(rpc(url, "eth_getTransactionCount", [sender, "pending"])), 16)
    non_terminal = [r[0] for r in rows if r[3] not in TERMINAL]
    nonces = sorted(r[4] for r in rows if r[4] is not None and r[6])  # nonces consumed by our mined txs
    calls = [r for r in rows if r[2] == "call"]
    succeeded = [r for r in calls if r[5] == "success"]
    mined = [str(r[6]) for r in rows if r[6]]
    mined_by = {str(r[6]): int(r[0]) for r in rows if r[6]}
    by_intent: dict[int, int] = {}
    problems: list[str] = []
    if non_terminal:
        problems.append(f"intents not settled: {non_terminal}")
    keys = [r[1] for r in rows]
    if len(keys) != len(set(keys)):
        problems.append("duplicate idempotency keys")
    if len(mined) != len(set(mined)):
        problems.append("two intents share a mined transaction")
    expected = list(range(first_nonce, chain_nonce))
    if nonces != expected:
        problems.append(f"nonce audit: journal {nonces} vs chain {expected}")
    if pending_nonce != chain_nonce:
        problems.append(f"{pending_nonce - chain_nonce} transaction(s) still pending")
    effects = 0
    topic = _rebalanced_topic()
    for tx_hash in mined:
        receipt = rpc(url, "eth_getTransactionReceipt", [tx_hash])
        if not isinstance(receipt, dict):
            problems.append(f"journal says mined, chain has no receipt: {tx_hash}")
            continue
        for log in receipt.get("logs", []):
            address_ok = vault_manager is None or str(log.get("address", "")).lower() == vault_manager.lower()
            if address_ok and log.get("topics") and str(log["topics"][0]).lower() == topic:
                effects += 1
                by_intent[mined_by[tx_hash]] = by_intent.get(mined_by[tx_hash], 0) + 1
    if effects != len(succeeded):
        problems.append(f"{effects} Rebalanced events for {len(succeeded)} successful intents")
    not_once = {int(r[0]): by_intent.get(int(r[0]), 0) for r in succeeded if by_intent.get(int(r[0]), 0) != 1}
    if not_once:
        problems.append(f"successful intents not effective exactly once (intent: events): {not_once}")
    # every transaction of ours on chain is journaled: the chain's nonce range is covered by journaled attempts
    attempted = {int(a[1]) for a in attempts}
    missing = [n for n in range(first_nonce, chain_nonce) if n not in attempted]
    if missing:
        problems.append(f"nonces used on chain without a journaled attempt: {missing}")
    return Audit(
        intents=len(rows),
        calls=len(calls),
        succeeded=len(succeeded),
        non_terminal=non_terminal,
        journal_nonces=nonces,
        chain_nonce=chain_nonce,
        pending_nonce=pending_nonce,
        first_nonce=first_nonce,
        mined_hashes=mined,
        effects_on_chain=effects,
        problems=problems,
        effects_by_intent=by_intent,
    )


def journal_intents(journal: Path, sender: str) -> list[tuple[int, str, str, str | None]]:
    """(id, kind, state, mined tx hash) of every intent of `sender`, oldest first (read-only; [] before the
    journal exists)."""
    if not journal.exists():
        return []
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT id, kind, state, mined_tx_hash FROM intents WHERE lower(sender) = ? ORDER BY id",
                            (sender.lower(),)).fetchall()
    except sqlite3.OperationalError:  # the schema is not there yet
        return []
    finally:
        conn.close()
    return [(int(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]
