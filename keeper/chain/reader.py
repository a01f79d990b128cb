"""The snapshot reader: the whole state for one block in one `Multicall3.aggregate3` eth_call.

Owns which views are read, encoding them, and decoding the answers into a `Snapshot`. The static
layout (asset list, feeds, decimals, vault count) is read once and re-read when a count changes; the
aggregate3 calldata for a layout is encoded once and reused every block. Answers are decoded by
reading 32-byte words directly (eth_abi is ~10× slower for thousands of books). Vault equity is
computed in Python exactly as `VaultManager.equityUsd` does (`keeper.snapshot.book_equity_usd30`),
so the node does not recompute AUM once per vault. Must not decide anything; a failed or malformed
answer is a ReadError (retryable).

The lending pool is read only through Aave v3's own interface, so the same reader works on a real
deployment: `getUserAccountData(account)`, `getReserveData(asset)` (the v3 ReserveDataLegacy layout:
the configuration bitmap with LTV, liquidation threshold and borrow cap, the current variable rate, the
aToken and variable debt token addresses) and the tokens' `balanceOf(account)` / `totalSupply()`. The
token addresses are resolved with the static layout; every tick re-reads `getReserveData` and re-reads
the layout if a reserve's token addresses changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3

from keeper.errors import ReadError
from keeper.snapshot import Asset, Book, Glp, LendingAccount, Manager, Snapshot, book_equity_usd30

BOOKS_PER_CALL = 250
_STATIC = {"uint256", "uint8", "uint80", "int256", "bool", "address"}


@dataclass(frozen=True)
class Call:
    """One view call: target, ABI signature and output types."""

    target: str
    signature: str
    args: tuple[Any, ...] = ()
    outputs: tuple[str, ...] = ("uint256",)
    allow_failure: bool = False

    def calldata(self) -> bytes:
        selector = keccak(text=self.signature)[:4]
        arg_types = self.signature[self.signature.index("(") :]
        if arg_types == "()":
            return selector
        return selector + encode([arg_types], [self.args])


def _word(buf: bytes, pos: int) -> int:
    return int.from_bytes(buf[pos : pos + 32], "big")


def _signed(value: int) -> int:
    return value - (1 << 256) if value >> 255 else value


def _decode_static(outputs: tuple[str, ...], ret: bytes) -> tuple[Any, ...]:
    if len(ret) < 32 * len(outputs):
        raise ValueError(f"{len(ret)} bytes for {len(outputs)} words")
    values: list[Any] = []
    for i, kind in enumerate(outputs):
        word = _word(ret, 32 * i)
        if kind == "bool":
            values.append(word != 0)
        elif kind == "int256":
            values.append(_signed(word))
        elif kind == "address":
            values.append(to_checksum_address(ret[32 * i + 12 : 32 * i + 32]))
        else:
            values.append(word)
    return tuple(values)


def _decode_uint_array(buf: bytes, pos: int) -> tuple[int, ...]:
    n = _word(buf, pos)
    return tuple(_word(buf, pos + 32 * (k + 1)) for k in range(n))


# Aave v3 ReserveConfiguration bit layout (DataTypes.ReserveConfigurationMap).
_LTV_BITS = (0, 16)
_LIQUIDATION_THRESHOLD_BITS = (16, 16)
_DECIMALS_BITS = (48, 8)
_BORROW_CAP_BITS = (80, 36)
# Aave v3 `getReserveData` → ReserveDataLegacy, one word per field (uint128/uint40/uint16 padded to 32 bytes).
RESERVE_DATA_OUTPUTS: tuple[str, ...] = ("uint256",) * 8 + ("address",) * 4 + ("uint256",) * 3
_RD_CONFIGURATION, _RD_VARIABLE_BORROW_RATE, _RD_ATOKEN, _RD_VARIABLE_DEBT_TOKEN = 0, 4, 8, 10


def _bits(data: int, at: tuple[int, int]) -> int:
    start, width = at
    return (data >> start) & ((1 << width) - 1)


@dataclass(frozen=True)
class ReserveConfiguration:
    """The parts of an Aave v3 reserve configuration bitmap the keeper uses (bps; cap in whole tokens)."""

    ltv_bps: int
    liquidation_threshold_bps: int
    decimals: int
    borrow_cap_tokens: int  # 0 = no cap


def decode_reserve_configuration(data: int) -> ReserveConfiguration:
    """Decode `getConfiguration(asset).data` (LTV bits 0-15, LT 16-31, decimals 48-55, borrow cap 80-115)."""
    return ReserveConfiguration(
        ltv_bps=_bits(data, _LTV_BITS),
        liquidation_threshold_bps=_bits(data, _LIQUIDATION_THRESHOLD_BITS),
        decimals=_bits(data, _DECIMALS_BITS),
        borrow_cap_tokens=_bits(data, _BORROW_CAP_BITS),
    )


def decode_books(ret: bytes) -> list[tuple[int, int, tuple[int, ...], tuple[int, ...], tuple[int, ...], int, int, int]]:
    """`getBooks` answer: Book[] with Book = (uint8, uint256, uint256[] ×3, uint256 ×3)."""
    base = _word(ret, 0)
    n = _word(ret, base)
    heads = base + 32
    out = []
    for k in range(n):
        t = heads + _word(ret, heads + 32 * k)
        out.append(
            (
                _word(ret, t),
                _word(ret, t + 32),
                _decode_uint_array(ret, t + _word(ret, t + 64)),
                _decode_uint_array(ret, t + _word(ret, t + 96)),
                _decode_uint_array(ret, t + _word(ret, t + 128)),
                _word(ret, t + 160),
                _word(ret, t + 192),
                _word(ret, t + 224),
            )
        )
    return out


def decode_aggregate3(raw: bytes) -> list[tuple[bool, bytes]]:
    """`aggregate3` answer: (bool success, bytes returnData)[]."""
    base = _word(raw, 0)
    n = _word(raw, base)
    heads = base + 32
    out = []
    for k in range(n):
        t = heads + _word(raw, heads + 32 * k)
        data_at = t + _word(raw, t + 32)
        length = _word(raw, data_at)
        out.append((_word(raw, t) != 0, raw[data_at + 32 : data_at + 32 + length]))
    return out


def encode_aggregate3(calls: Sequence[Call]) -> str:
    payload = [(Web3.to_checksum_address(c.target), c.allow_failure, c.calldata()) for c in calls]
    data = keccak(text="aggregate3((address,bool,bytes)[])")[:4] + encode(["(address,bool,bytes)[]"], [payload])
    return "0x" + data.hex()


def _decode(call: Call, ret: bytes) -> Any:
    if call.outputs == ("Book[]",):
        return decode_books(ret)
    if all(kind in _STATIC for kind in call.outputs):
        return _decode_static(call.outputs, ret)
    return decode(list(call.outputs), ret)


def multicall(
    w3: Web3, multicall_address: str, calls: Sequence[Call], block: int, *, calldata: str | None = None
) -> list[Any]:
    """Run `calls` in one aggregate3 eth_call at `block`; return each call's decoded outputs."""
    # Straight to the provider: exactly one JSON-RPC request (web3's middleware would add eth_chainId calls).
    tx = {"to": multicall_address, "data": calldata or encode_aggregate3(calls)}
    try:
        answer = w3.provider.make_request("eth_call", [tx, hex(block)])  # type: ignore[arg-type]
    except Exception as exc:  # transport errors come in many types
        raise ReadError(f"aggregate3 at block {block} failed: {exc.__class__.__name__}: {exc}") from exc
    if "error" in answer:
        raise ReadError(f"aggregate3 at block {block} failed: {answer['error']}")
    raw_hex = answer.get("result")
    if not isinstance(raw_hex, str) or not raw_hex.startswith("0x"):
        raise ReadError(f"aggregate3 at block {block}: malformed result {raw_hex!r:.60}")
    try:
        results = decode_aggregate3(bytes.fromhex(raw_hex[2:]))
    except Exception as exc:
        raise ReadError(f"aggregate3 at block {block}: undecodable answer ({exc})") from exc
    if len(results) != len(calls):
        raise ReadError(f"aggregate3 returned {len(results)} results for {len(calls)} calls")
    out: list[Any] = []
    for call, (ok, ret) in zip(calls, results, strict=True):
        if not ok:
            if call.allow_failure:
                out.append(None)
                continue
            raise ReadError(f"{call.signature} on {call.target} reverted at block {block}")
        try:
            out.append(_decode(call, ret))
        except Exception as exc:
            raise ReadError(f"{call.signature} on {call.target}: undecodable answer ({exc})") from exc
    return out


@dataclass(frozen=True)
class Layout:
    """What does not change block to block: the asset list and its static metadata."""

    symbols: tuple[str, ...]
    tokens: tuple[str, ...]
    feeds: tuple[str, ...]
    decimals: tuple[int, ...]
    feed_decimals: tuple[int, ...]
    stable: tuple[bool, ...]
    a_tokens: tuple[str, ...]
    debt_tokens: tuple[str, ...]
    vault_count: int


@dataclass(frozen=True)
class Addresses:
    vault_manager: str
    multicall: str
    gmx_vault: str
    glp_manager: str
    reward_router: str
    pool: str
    glp: str


class _LayoutChangedError(Exception):
    pass


def _or_zero(answer: tuple[int, ...] | None) -> int:
    """A price-dependent view that reverted (allowFailure) reads as 0: the oracle guard refuses it."""
    return 0 if answer is None else answer[0]


_ROUND_DATA = ("uint80", "int256", "uint256", "uint256", "uint80")
_PER_ASSET = 13  # per-tick calls per asset
_META_PER_ASSET = 5  # layout calls per asset
ZERO_ADDRESS = "0x" + "0" * 40


class SnapshotReader:
    """Reads `Snapshot`s. One eth_call per block once the layout is known."""

    def __init__(self, w3: Web3, addresses: Addresses, keeper_address: str) -> None:
        self._w3 = w3
        self._a = Addresses(*(to_checksum_address(x) for x in vars(addresses).values()))
        self._keeper = to_checksum_address(keeper_address)
        self._layout: Layout | None = None
        self._chain_id: int | None = None
        self._prepared: tuple[list[Call], str, Callable[[list[Any], int, int], Snapshot]] | None = None

    def read_layout(self, block: int) -> Layout:
        a, w3 = self._a, self._w3
        count_calls = [Call(a.vault_manager, "assetCount()"), Call(a.vault_manager, "vaultCount()")]
        (count,), (vaults,) = multicall(w3, a.multicall, count_calls, block)
        first = [Call(a.vault_manager, "assets(uint256)", (i,), ("address",)) for i in range(count)]
        first += [Call(a.vault_manager, "feeds(uint256)", (i,), ("address",)) for i in range(count)]
        answers = multicall(w3, a.multicall, first, block)
        tokens = tuple(t[0] for t in answers[:count])
        feeds = tuple(f[0] for f in answers[count:])
        meta: list[Call] = []
        for token, feed in zip(tokens, feeds, strict=True):
            meta += [
                Call(token, "symbol()", outputs=("string",)),
                Call(token, "decimals()", outputs=("uint8",)),
                Call(feed, "decimals()", outputs=("uint8",)),
                Call(a.gmx_vault, "stableTokens(address)", (token,), ("bool",)),
                # an unlisted asset reverts here and reads as zeros on Aave: both are refused below
                Call(a.pool, "getReserveData(address)", (token,), RESERVE_DATA_OUTPUTS, allow_failure=True),
            ]
        m = multicall(w3, a.multicall, meta, block)
        k = _META_PER_ASSET
        for i, token in enumerate(tokens):
            reserve = m[k * i + 4]
            if reserve is None or ZERO_ADDRESS in (reserve[_RD_ATOKEN], reserve[_RD_VARIABLE_DEBT_TOKEN]):
                raise ReadError(
                    f"asset {token} is not a reserve of the lending pool {a.pool}: getReserveData gives no "
                    "aToken / variable debt token"
                )
        return Layout(
            symbols=tuple(m[k * i][0] for i in range(count)),
            tokens=tokens,
            feeds=feeds,
            decimals=tuple(m[k * i + 1][0] for i in range(count)),
            feed_decimals=tuple(m[k * i + 2][0] for i in range(count)),
            stable=tuple(m[k * i + 3][0] for i in range(count)),
            a_tokens=tuple(m[k * i + 4][_RD_ATOKEN] for i in range(count)),
            debt_tokens=tuple(m[k * i + 4][_RD_VARIABLE_DEBT_TOKEN] for i in range(count)),
            vault_count=vaults,
        )

    def _prepare(self, layout: Layout) -> tuple[list[Call], str, Callable[[list[Any], int, int], Snapshot]]:
        a, vm = self._a, self._a.vault_manager
        calls: list[Call] = [
            Call(a.multicall, "getCurrentBlockTimestamp()"),
            Call(a.multicall, "getEthBalance(address)", (self._keeper,)),
            Call(vm, "assetCount()"),
            Call(vm, "vaultCount()"),
            Call(vm, "paused()", outputs=("bool",)),
            Call(vm, "rebalanceCount()"),
            Call(vm, "lastRebalanceAt()"),
            Call(vm, "lastCycleAt()"),
            Call(vm, "lastProfitAt()"),
            Call(vm, "lastHarvestAt()"),
            Call(a.glp, "totalSupply()"),
            # price-dependent views revert when a feed is non-positive (GMX's own check): read them with
            # allowFailure and let a revert show as 0, so the oracle guard refuses instead of the read failing
            Call(a.glp_manager, "getAum(bool)", (True,), allow_failure=True),
            Call(a.glp_manager, "getAum(bool)", (False,), allow_failure=True),
            Call(a.gmx_vault, "mintBurnFeeBasisPoints()"),
            Call(a.reward_router, "claimable(address)", (vm,)),
            Call(a.pool, "getUserAccountData(address)", (vm,), ("uint256",) * 6),
        ]
        head = len(calls)
        for i, token in enumerate(layout.tokens):
            a_token, debt_token = layout.a_tokens[i], layout.debt_tokens[i]
            calls += [
                Call(layout.feeds[i], "latestRoundData()", outputs=_ROUND_DATA),
                Call(a.gmx_vault, "getMinPrice(address)", (token,), allow_failure=True),
                Call(a.gmx_vault, "getMaxPrice(address)", (token,), allow_failure=True),
                Call(a.gmx_vault, "poolAmounts(address)", (token,)),
                Call(a.gmx_vault, "reservedAmounts(address)", (token,)),
                Call(a.gmx_vault, "guaranteedUsd(address)", (token,)),
                Call(a.gmx_vault, "globalShortSizes(address)", (token,)),
                Call(a.glp_manager, "getGlobalShortAveragePrice(address)", (token,)),
                Call(a.pool, "getReserveData(address)", (token,), RESERVE_DATA_OUTPUTS),
                Call(a_token, "balanceOf(address)", (vm,)),
                Call(debt_token, "balanceOf(address)", (vm,)),
                Call(debt_token, "totalSupply()"),
                Call(vm, "unassignedDebt(uint8)", (i,)),
            ]
        books_at = len(calls)
        for start in range(0, layout.vault_count, BOOKS_PER_CALL):
            end = min(start + BOOKS_PER_CALL, layout.vault_count)
            calls.append(Call(vm, "getBooks(uint256,uint256)", (start, end), ("Book[]",)))
        n_assets = len(layout.tokens)

        def build(r: list[Any], chain_id: int, block: int) -> Snapshot:
            if r[2][0] != n_assets or r[3][0] != layout.vault_count:
                raise _LayoutChangedError
            assets = []
            for i in range(n_assets):
                x = r[head + _PER_ASSET * i : head + _PER_ASSET * (i + 1)]
                _, answer, _, updated_at, _ = x[0]
                reserve = x[8]
                tokens = (reserve[_RD_ATOKEN], reserve[_RD_VARIABLE_DEBT_TOKEN])
                if tokens != (layout.a_tokens[i], layout.debt_tokens[i]):
                    raise _LayoutChangedError  # the reserve's tokens were replaced: resolve them again
                config = decode_reserve_configuration(reserve[_RD_CONFIGURATION])
                assets.append(
                    Asset(
                        symbol=layout.symbols[i], address=layout.tokens[i], decimals=layout.decimals[i],
                        is_stable=layout.stable[i], feed=layout.feeds[i], feed_decimals=layout.feed_decimals[i],
                        feed_answer=answer, feed_updated_at=updated_at,
                        gmx_min_price=_or_zero(x[1]), gmx_max_price=_or_zero(x[2]), pool_amount=x[3][0],
                        reserved_amount=x[4][0], guaranteed_usd=x[5][0], global_short_size=x[6][0],
                        global_short_average_price=x[7][0],
                        liquidation_threshold_bps=config.liquidation_threshold_bps, ltv_bps=config.ltv_bps,
                        borrow_cap_tokens=config.borrow_cap_tokens,
                        borrow_rate_ray=reserve[_RD_VARIABLE_BORROW_RATE],
                        account_collateral=x[9][0], account_debt=x[10][0], total_debt=x[11][0],
                        unassigned_debt=x[12][0],
                    )
                )
            glp = Glp(
                supply=r[10][0], aum_max=_or_zero(r[11]), aum_min=_or_zero(r[12]),
                mint_burn_fee_bps=r[13][0], pending_rewards_weth=r[14][0],
            )
            asset_tuple = tuple(assets)
            books = []
            vault_id = 0
            for chunk in r[books_at:]:
                for denom, glp_units, cash, coll, debt, pend_dep, pend_wd, shares in chunk:
                    book = Book(
                        vault_id=vault_id, denomination=denom, glp=glp_units, cash=cash, collateral=coll,
                        debt=debt, pending_deposits=pend_dep, pending_withdrawal_shares=pend_wd,
                        total_shares=shares, equity_usd=0,
                    )
                    books.append(book.with_equity(book_equity_usd30(asset_tuple, glp, book)))
                    vault_id += 1
            return Snapshot(
                chain_id=chain_id,
                block_number=block,
                block_timestamp=r[0][0],
                assets=asset_tuple,
                glp=glp,
                lending=LendingAccount(*r[15]),
                manager=Manager(
                    address=vm, paused=r[4][0], rebalance_count=r[5][0], last_rebalance_at=r[6][0],
                    last_cycle_at=r[7][0], last_profit_at=r[8][0], last_harvest_at=r[9][0],
                ),
                books=tuple(books),
                keeper_address=self._keeper,
                keeper_balance_wei=r[1][0],
            )

        return calls, encode_aggregate3(calls), build

    def read(self, block: int | None = None) -> Snapshot:
        """The snapshot at `block` (default: the latest block), from one aggregate3 call."""
        w3 = self._w3
        if self._chain_id is None:
            self._chain_id = int(w3.eth.chain_id)
        number = int(w3.eth.block_number) if block is None else block
        for _ in range(2):
            if self._layout is None or self._prepared is None:
                self._layout = self.read_layout(number)
                self._prepared = self._prepare(self._layout)
            calls, calldata, build = self._prepared
            try:
                answers = multicall(w3, self._a.multicall, calls, number, calldata=calldata)
                return build(answers, self._chain_id, number)
            except _LayoutChangedError:
                self._layout = self._prepared = None
        raise ReadError("vault or asset count changed twice while reading; retry")
