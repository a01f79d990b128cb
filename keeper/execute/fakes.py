"""An in-memory `Chain` for fast pipeline tests: a mempool, blocks, receipts and scriptable node answers.

It decodes the signed bytes it is given (sender, nonce, fees) like a node would, enforces nonce order,
"already known", "nonce too low", the replacement bump (10%, like geth's default) and the base fee.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from eth_utils.crypto import keccak

from keeper.errors import ReadError
from keeper.execute.chain import Block, BlockTag, CallRequest, Log, Receipt, Route, Simulation
from keeper.execute.classify import SendError, classify_send_error
from keeper.execute.gas import FeeHistory


@dataclass
class PoolTx:
    tx_hash: str
    raw: bytes
    sender: str
    nonce: int
    to: str
    value: int
    fee_cap: int  # maxFeePerGas or gasPrice
    priority: int
    gas: int = 0


def decode_raw(raw: bytes) -> PoolTx:
    from keeper.execute.signer import decode_signed

    sender, tx = decode_signed(raw)
    fee_cap = int(tx.get("maxFeePerGas", tx.get("gasPrice", 0)))
    priority = int(tx.get("maxPriorityFeePerGas", tx.get("gasPrice", 0)))
    to = str(tx["to"]).lower()
    return PoolTx(
        "0x" + keccak(raw).hex(), raw, sender.lower(), tx["nonce"], to, tx["value"], fee_cap, priority, int(tx["gas"])
    )


@dataclass
class FakeChain:
    chain: int = 31337
    base_fee: int | None = 10**9  # None: a legacy chain without fee history
    gas_price_wei: int = 2 * 10**9
    finality_lag: int = 2
    private: bool = False
    head: int = 0
    nonces: dict[str, int] = field(default_factory=dict)
    mempool: dict[tuple[str, int], PoolTx] = field(default_factory=dict)
    receipts: dict[str, Receipt] = field(default_factory=dict)
    mined: list[PoolTx] = field(default_factory=list)
    send_errors: list[str] = field(default_factory=list)  # scripted answers for the next sends
    reverts: dict[str, bytes] = field(default_factory=dict)  # `to` (lower) → revert data
    revert_on_mine: set[str] = field(default_factory=set)  # `to` (lower): transactions to it mine with status 0
    out_of_gas: set[str] = field(default_factory=set)  # `to` (lower): mine with status 0 using their whole gas limit
    sends: list[tuple[str, Route]] = field(default_factory=list)
    read_failures: int = 0

    @property
    def has_private_route(self) -> bool:
        return self.private

    def _read(self) -> None:
        if self.read_failures > 0:
            self.read_failures -= 1
            raise ReadError("fake: endpoint down")

    def chain_id(self) -> int:
        return self.chain

    def _hash(self, number: int) -> str:
        return "0x" + keccak(text=f"block-{number}-{len(self.mined)}").hex()

    def block(self, tag: BlockTag) -> Block | None:
        self._read()
        number = {"latest": self.head, "pending": self.head, "finalized": self.head - self.finality_lag}.get(
            str(tag), tag if isinstance(tag, int) else self.head
        )
        assert isinstance(number, int)
        return None if number < 0 else Block(number, self._hash(number), self.base_fee)

    def nonce(self, address: str, tag: BlockTag) -> int:
        self._read()
        latest = self.nonces.get(address.lower(), 0)
        if tag != "pending":
            return latest
        while (address.lower(), latest) in self.mempool:
            latest += 1
        return latest

    def fee_history(self, blocks: int, percentiles: Sequence[float]) -> FeeHistory | None:
        if self.base_fee is None:
            return None
        return FeeHistory(
            (self.base_fee,) * (blocks + 1),
            tuple((10**8,) * len(percentiles) for _ in range(blocks)),
            tuple(percentiles),
        )

    def gas_price(self) -> int:
        return self.gas_price_wei

    def simulate(self, call: CallRequest, block: int) -> Simulation:
        self._read()
        data = self.reverts.get(call.to.lower())
        if data is not None:
            return Simulation(False, None, data, "execution reverted")
        return Simulation(True, 21_000 + 16 * len(call.data))

    def send_raw(self, raw: bytes, route: Route = "public") -> str:
        if self.send_errors:
            raise SendError(classify_send_error(self.send_errors.pop(0)))
        tx = decode_raw(raw)
        self.sends.append((tx.tx_hash, route))
        if tx.tx_hash in self.receipts or tx.nonce < self.nonces.get(tx.sender, 0):
            raise SendError(classify_send_error("nonce too low"))
        current = self.mempool.get((tx.sender, tx.nonce))
        if current is not None:
            if current.tx_hash == tx.tx_hash:
                raise SendError(classify_send_error("already known"))
            if tx.fee_cap * 10 < current.fee_cap * 11 or tx.priority * 10 < current.priority * 11:
                raise SendError(classify_send_error("replacement transaction underpriced"))
        if self.base_fee is not None and tx.fee_cap < self.base_fee:
            raise SendError(classify_send_error("max fee per gas less than block base fee"))
        self.mempool[(tx.sender, tx.nonce)] = tx
        return tx.tx_hash

    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            self.head += 1
            for (sender, nonce), tx in sorted(self.mempool.items(), key=lambda kv: kv[0][1]):
                if nonce != self.nonces.get(sender, 0) or (self.base_fee is not None and tx.fee_cap < self.base_fee):
                    continue
                del self.mempool[(sender, nonce)]
                self.nonces[sender] = nonce + 1
                self.mined.append(tx)
                ok = tx.to not in self.revert_on_mine and tx.to not in self.out_of_gas
                self.receipts[tx.tx_hash] = Receipt(
                    tx.tx_hash, self.head, self._hash(self.head), 1 if ok else 0,
                    (Log(tx.to, ("0x" + "00" * 32,)),) if ok else (),
                    gas_used=tx.gas if tx.to in self.out_of_gas else 21_000,
                )

    def foreign_tx(self, sender: str) -> None:
        """Someone else used the key: the sender's next nonce is consumed outside the journal."""
        self.nonces[sender.lower()] = self.nonces.get(sender.lower(), 0) + 1
        self.mempool = {
            k: v for k, v in self.mempool.items() if not (k[0] == sender.lower() and k[1] < self.nonces[sender.lower()])
        }

    def receipt(self, tx_hash: str) -> Receipt | None:
        self._read()
        return self.receipts.get(tx_hash)

    def knows(self, tx_hash: str) -> bool:
        return tx_hash in self.receipts or any(t.tx_hash == tx_hash for t in self.mempool.values())

    def balance_of(self, to: str) -> int:
        return sum(t.value for t in self.mined if t.to == to.lower())
