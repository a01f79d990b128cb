"""The last fence before the network: a Chain whose `send_raw` first proves this process still leads.

The journal fences every write that creates a transaction (intent, nonce, signed bytes) in the same
database transaction. Signing and broadcasting happen after those writes, so a leader paused between
storing a signed transaction and sending it could otherwise send it after losing the lease. `FencedChain`
checks the fencing token immediately before every broadcast (first sends, re-sends, replacements) and
raises FencingError instead of sending. What is left is the unavoidable gap between that check and the
bytes leaving the socket; the bytes it can concern are already in the shared journal, so the new leader
sends (or replaces, at the same nonce) exactly those bytes: one nonce, one effect.
Does not sign; forwards every read unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from keeper.execute.chain import Block, BlockTag, CallRequest, Chain, Receipt, Route, Simulation
from keeper.execute.gas import FeeHistory


class FencedChain:
    """Wraps a Chain; `check()` raises (FencingError) when this process may not broadcast."""

    def __init__(self, inner: Chain, check: Callable[[], None]) -> None:
        self.inner = inner
        self._check = check

    @property
    def has_private_route(self) -> bool:
        return self.inner.has_private_route

    def chain_id(self) -> int:
        return self.inner.chain_id()

    def block(self, tag: BlockTag) -> Block | None:
        return self.inner.block(tag)

    def nonce(self, address: str, tag: BlockTag) -> int:
        return self.inner.nonce(address, tag)

    def fee_history(self, blocks: int, percentiles: Sequence[float]) -> FeeHistory | None:
        return self.inner.fee_history(blocks, percentiles)

    def gas_price(self) -> int:
        return self.inner.gas_price()

    def simulate(self, call: CallRequest, block: int) -> Simulation:
        return self.inner.simulate(call, block)

    def send_raw(self, raw: bytes, route: Route = "public") -> str:
        self._check()  # raises before anything leaves this process
        return self.inner.send_raw(raw, route)

    def receipt(self, tx_hash: str) -> Receipt | None:
        return self.inner.receipt(tx_hash)

    def knows(self, tx_hash: str) -> bool:
        return self.inner.knows(tx_hash)
