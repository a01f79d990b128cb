"""Chain events and bad data on an anvil devnet: reorgs, mempool eviction, base-fee spikes, oracle and pool
faults. Each function is one injection; the caller decides when and how often. Devnet only (anvil_* methods
and the reference system's owner-only setters).
"""

from __future__ import annotations

from decimal import Decimal

from web3 import Web3

from keeper.devnet.anvil import rpc
from keeper.devnet.deploy import FEED_DECIMALS, TOKEN_SPECS, Deployment, contract, send


def head(url: str) -> int:
    return int(str(rpc(url, "eth_blockNumber")), 16)


def mine(url: str, blocks: int = 1) -> None:
    for _ in range(blocks):
        rpc(url, "evm_mine")


def automine(url: str, on: bool) -> None:
    rpc(url, "evm_setAutomine", [on])


def nonce(url: str, address: str, tag: str = "latest") -> int:
    return int(str(rpc(url, "eth_getTransactionCount", [address, tag])), 16)


def reorg(url: str, depth: int) -> None:
    """Replace the last `depth` blocks with empty ones (their transactions go back to no block at all)."""
    if not 1 <= depth <= 64:
        raise ValueError("reorg depth must be within 1..64")
    rpc(url, "anvil_reorg", [depth, []])


def drop_mempool(url: str) -> None:
    """Evict every pending transaction from the node's mempool."""
    rpc(url, "anvil_dropAllTransactions")


def base_fee_spike(url: str, wei: int) -> None:
    """The next block's base fee (a spike when above the keeper's cap)."""
    rpc(url, "anvil_setNextBlockBaseFeePerGas", [hex(wei)])


def base_fee(url: str) -> int:
    block = rpc(url, "eth_getBlockByNumber", ["latest", False])
    assert isinstance(block, dict)
    return int(str(block.get("baseFeePerGas", "0x0")), 16)


class BadData:
    """Oracle and pool faults through the devnet contracts' admin setters (sender: the deployment owner)."""

    def __init__(self, w3: Web3, deployment: Deployment) -> None:
        self.w3 = w3
        self.d = deployment
        self._gmx = contract(w3, "Vault", deployment.gmx_vault)

    def _answer(self, usd: Decimal) -> int:
        return int((usd * 10**FEED_DECIMALS).to_integral_value())

    def price(self, symbol: str, usd: Decimal) -> None:
        """A sane, fresh price (updatedAt = block time)."""
        feed = contract(self.w3, "PriceFeed", self.d.feeds[symbol])
        send(self.w3, feed.functions.setAnswer(self._answer(usd)), self.d.owner, f"price {symbol}")

    def stale(self, symbol: str, usd: Decimal, age_seconds: int) -> None:
        """A new round whose updatedAt is `age_seconds` before the latest block's time."""
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        feed = contract(self.w3, "PriceFeed", self.d.feeds[symbol])
        send(self.w3, feed.functions.setRoundData(self._answer(usd), now - age_seconds), self.d.owner, "stale")

    def raw_answer(self, symbol: str, answer: int) -> None:
        """Zero or negative answers (GMX reads the same feed: its prices follow)."""
        feed = contract(self.w3, "PriceFeed", self.d.feeds[symbol])
        send(self.w3, feed.functions.setAnswer(answer), self.d.owner, "raw answer")

    def spread(self, symbol: str, bps: int) -> None:
        """GMX min/max price spread: the sources diverge by about 2×bps."""
        send(self.w3, self._gmx.functions.setSpreadBasisPoints(self.d.tokens[symbol], bps), self.d.owner, "spread")

    def pool_amount(self, symbol: str) -> int:
        value: int = self._gmx.functions.poolAmounts(self.d.tokens[symbol]).call()
        return value

    def set_pool_amount(self, symbol: str, tokens: Decimal) -> None:
        """Rewrite the GMX pool amount of `symbol` (GLP composition, hence each vault's target weight, jumps)."""
        amount = int(tokens * 10 ** TOKEN_SPECS[symbol][1])
        send(self.w3, self._gmx.functions.setPoolAmount(self.d.tokens[symbol], amount), self.d.owner, "pool")

    def set_pool_amount_raw(self, symbol: str, amount: int) -> None:
        send(self.w3, self._gmx.functions.setPoolAmount(self.d.tokens[symbol], amount), self.d.owner, "pool")
