"""The snapshot: everything the decision core may know about one block, as plain frozen dataclasses.

Owns the shape of the on-chain state the keeper reads (mirroring the reference contracts field by
field, in on-chain integer units) and its JSON form with validation. Must not import web3, read the
clock or do I/O: the chain reader fills it, `keeper snapshot` writes it, the decision core reads it.

Units: token amounts in the token's smallest unit; Chainlink answers with the feed's decimals; GMX
prices and AUM in USD × 1e30; Aave base values in USD × 1e8; health factor × 1e18; bps = 1/10,000.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from keeper.errors import InputError

SNAPSHOT_VERSION = 1
MAX_UINT256 = 2**256 - 1


@dataclass(frozen=True)
class Asset:
    """One token the strategy account knows: its feed, its GMX pool state, its lending reserve."""

    symbol: str
    address: str
    decimals: int
    is_stable: bool
    feed: str
    feed_decimals: int
    feed_answer: int
    feed_updated_at: int
    gmx_min_price: int
    gmx_max_price: int
    pool_amount: int
    reserved_amount: int
    guaranteed_usd: int
    global_short_size: int
    global_short_average_price: int
    liquidation_threshold_bps: int
    ltv_bps: int
    borrow_cap_tokens: int
    borrow_rate_ray: int
    account_collateral: int
    account_debt: int
    unassigned_debt: int


@dataclass(frozen=True)
class Glp:
    """GLP supply, AUM (both sides) and the mint/burn fee."""

    supply: int
    aum_max: int
    aum_min: int
    mint_burn_fee_bps: int
    pending_rewards_weth: int


@dataclass(frozen=True)
class LendingAccount:
    """`Pool.getUserAccountData` of the strategy account."""

    total_collateral_base: int
    total_debt_base: int
    available_borrows_base: int
    liquidation_threshold_bps: int
    ltv_bps: int
    health_factor: int


@dataclass(frozen=True)
class Book:
    """One vault's book in the strategy account (`VaultManager.getBook`). Per-asset tuples follow `assets`."""

    vault_id: int
    denomination: int
    glp: int
    cash: tuple[int, ...]
    collateral: tuple[int, ...]
    debt: tuple[int, ...]
    pending_deposits: int
    pending_withdrawal_shares: int
    total_shares: int
    equity_usd: int


@dataclass(frozen=True)
class Manager:
    """VaultManager-wide state: marks the decision core needs from chain (not process) time."""

    address: str
    paused: bool
    rebalance_count: int
    last_rebalance_at: int
    last_cycle_at: int
    last_profit_at: int
    last_harvest_at: int


@dataclass(frozen=True)
class Snapshot:
    """One consistent read of the chain at `block_number`."""

    chain_id: int
    block_number: int
    block_timestamp: int
    assets: tuple[Asset, ...]
    glp: Glp
    lending: LendingAccount
    manager: Manager
    books: tuple[Book, ...]
    keeper_address: str
    keeper_balance_wei: int
    version: int = SNAPSHOT_VERSION

    def asset_index(self, symbol: str) -> int:
        for index, asset in enumerate(self.assets):
            if asset.symbol == symbol:
                return index
        raise KeyError(symbol)

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-safe dict; integers above 2**53 stay exact because Python's json writes big ints."""
        return asdict(self)


T = TypeVar("T")


def _int(value: object, path: str, *, signed: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        else:
            raise InputError(path, f"expected an integer, got {type(value).__name__} {value!r:.40}")
    if not signed and value < 0:
        raise InputError(path, f"must not be negative, got {value}")
    if value > MAX_UINT256:
        raise InputError(path, "exceeds uint256")
    return value


def _build(cls: type[T], data: object, path: str) -> T:
    if not isinstance(data, Mapping):
        raise InputError(path or "snapshot", f"expected an object, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InputError(f"{path}.{unknown[0]}".lstrip("."), "unknown field")
    values: dict[str, Any] = {}
    for name, spec in known.items():
        where = f"{path}.{name}".lstrip(".")
        if name not in data:
            if name == "version":
                continue
            raise InputError(where, "missing")
        raw = data[name]
        kind = spec.type if isinstance(spec.type, str) else getattr(spec.type, "__name__", "")
        if kind == "int":
            values[name] = _int(raw, where)
        elif kind == "bool":
            if not isinstance(raw, bool):
                raise InputError(where, f"expected true or false, got {raw!r:.40}")
            values[name] = raw
        elif kind == "str":
            if not isinstance(raw, str) or not raw:
                raise InputError(where, "expected a non-empty string")
            values[name] = raw
        elif kind == "tuple[int, ...]":
            if not isinstance(raw, Sequence) or isinstance(raw, str):
                raise InputError(where, "expected a list of integers")
            values[name] = tuple(_int(item, f"{where}[{i}]") for i, item in enumerate(raw))
        else:
            sub = {"Glp": Glp, "LendingAccount": LendingAccount, "Manager": Manager}.get(kind)
            if sub is not None:
                values[name] = _build(sub, raw, where)
            elif kind in {"tuple[Asset, ...]", "tuple[Book, ...]"}:
                item_cls: type[Any] = Asset if "Asset" in kind else Book
                if not isinstance(raw, Sequence) or isinstance(raw, str):
                    raise InputError(where, "expected a list")
                values[name] = tuple(_build(item_cls, item, f"{where}[{i}]") for i, item in enumerate(raw))
            else:  # pragma: no cover - a field type this parser does not know is a programming error
                raise TypeError(f"unsupported field type {kind} for {where}")
    return cls(**values)


def snapshot_from_json_dict(data: object) -> Snapshot:
    """Validate and build a Snapshot; an InputError names the offending field path and the reason."""
    snap = _build(Snapshot, data, "")
    if snap.version != SNAPSHOT_VERSION:
        raise InputError("version", f"unsupported snapshot version {snap.version} (expected {SNAPSHOT_VERSION})")
    n = len(snap.assets)
    for i, book in enumerate(snap.books):
        for name in ("cash", "collateral", "debt"):
            if len(getattr(book, name)) != n:
                raise InputError(f"books[{i}].{name}", f"has {len(getattr(book, name))} entries, expected {n}")
        if book.denomination >= n:
            raise InputError(f"books[{i}].denomination", f"asset index {book.denomination} out of range")
    return snap
