"""The snapshot: everything the decision core may know about one block, as plain frozen dataclasses.

Owns the shape of the on-chain state the keeper reads (mirroring the reference contracts field by
field, in on-chain integer units) and its JSON form with validation. Must not import web3, read the
clock or do I/O: the chain reader fills it, `keeper snapshot` writes it, the decision core reads it.

Units: token amounts in the token's smallest unit; Chainlink answers with the feed's decimals; GMX
prices and AUM in USD × 1e30; Aave base values in USD × 1e8; health factor × 1e18; bps = 1/10,000.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, fields, replace
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
    # the reserve's total variable debt over all borrowers (debt token totalSupply), token units; the
    # borrow cap counts it. Default 0 only for builders of reserves without a cap (see decision._borrow_room).
    total_debt: int = 0


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

    def with_equity(self, equity_usd: int) -> Book:
        return replace(self, equity_usd=equity_usd)


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
class Memory:
    """The keeper's own persisted memory (written by the decision core, stored by the daemon, read back
    into the next snapshot). Restart-safe timers and marks; JSON-friendly: ints, strings, sorted tuples.

    oi_drift_since: asset symbol → the earliest running per-vault net-OI timer of that asset (derived from
                    `oi_drift_since_vault`, kept for display; an older memory without per-vault timers seeds
                    every vault's timer from it, so an upgrade neither resets nor fakes a timer)
    oi_drift_since_vault: (vault id, asset symbol) → block timestamp since which that vault's net-OI drift (from
                    the OI it was fitted to) has stayed ≥ its threshold
    oi_applied:     asset symbol → trader net OI (token units, signed, floor) the hedges were last fitted to
    oi_applied_vault: (vault id, asset symbol) → the OI that vault's hedges were last fitted to, only where it
                    differs from `oi_applied` (a health-factor refit of some vaults, or a vault that was halted
                    while the others refit with the new OI)
    marks:          asset symbol → oracle price (USD × 1e30 per whole token) at the previous decision
    marked_at:      block timestamp of `marks` (0: never marked)
    hedge_pnl:      vault id → hedge PnL (USD × 1e30, signed) accumulated since its last profit settlement
    invested:       vault id → invested equity (USD × 1e30: equity − buffer) at its last fit
    weights:        (asset symbol, timestamp, weight in ppm of the GLP price) samples for the volatility bands
    halts:          halt key (e.g. "band:0:WETH") → timestamp since which the halt is raised
    acks:           halt key → timestamp at which an operator acknowledged it (clears halts raised before)
    partial_targets: (vault id, "GLP" or asset symbol) → the uncapped target (GLP units, debt in token units) of
                    the vault's last rebalance, which a cap truncated: present means the next tick continues
    """

    oi_drift_since: tuple[tuple[str, int], ...] = ()
    oi_applied: tuple[tuple[str, int], ...] = ()
    marks: tuple[tuple[str, int], ...] = ()
    marked_at: int = 0
    hedge_pnl: tuple[tuple[int, int], ...] = ()
    invested: tuple[tuple[int, int], ...] = ()
    weights: tuple[tuple[str, int, int], ...] = ()
    halts: tuple[tuple[str, int], ...] = ()
    acks: tuple[tuple[str, int], ...] = ()
    oi_applied_vault: tuple[tuple[int, str, int], ...] = ()
    partial_targets: tuple[tuple[int, str, int], ...] = ()
    oi_drift_since_vault: tuple[tuple[int, str, int], ...] = ()


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
    memory: Memory = Memory()

    def asset_index(self, symbol: str) -> int:
        for index, asset in enumerate(self.assets):
            if asset.symbol == symbol:
                return index
        raise KeyError(symbol)

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-safe dict; integers above 2**53 stay exact because Python's json writes big ints."""
        return asdict(self)


def feed_price_usd30(asset: Asset) -> int:
    """One whole token in USD × 1e30 from its Chainlink answer (exact; `VaultManager.priceOf`)."""
    return asset.feed_answer * int(10 ** (30 - asset.feed_decimals))


def book_equity_usd30(assets: Sequence[Asset], glp: Glp, book: Book) -> int:
    """A vault's equity in USD × 1e30, computed exactly as `VaultManager.equityUsd` (each term rounded down).

    GLP at `getAum(false) / supply`; tokens (cash + collateral − debt, pending deposits) at their feeds.
    """

    def usd(i: int, amount: int) -> int:
        return amount * feed_price_usd30(assets[i]) // 10 ** assets[i].decimals if amount else 0

    plus = (book.glp * glp.aum_min // glp.supply if book.glp and glp.supply else 0) + usd(
        book.denomination, book.pending_deposits
    )
    minus = 0
    for i in range(len(assets)):
        plus += usd(i, book.cash[i] + book.collateral[i])
        minus += usd(i, book.debt[i])
    return plus - minus if plus > minus else 0


T = TypeVar("T")


def _int(value: object, path: str, *, signed: bool = False) -> int:
    """A JSON integer (not a float, bool or digit string: the format writes integers as JSON integers)."""
    if isinstance(value, bool) or not isinstance(value, int):
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
            if spec.default is not MISSING:  # version, memory, Asset.total_debt
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
        elif kind == "Memory":
            values[name] = memory_from_json_dict(raw, where)
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


_MEMORY_KEYS: dict[str, tuple[str, ...]] = {
    "oi_drift_since": ("str", "uint"),
    "oi_applied": ("str", "int"),
    "marks": ("str", "uint"),
    "hedge_pnl": ("uint", "int"),
    "invested": ("uint", "int"),
    "weights": ("str", "uint", "uint"),
    "halts": ("str", "uint"),
    "acks": ("str", "uint"),
    "oi_applied_vault": ("uint", "str", "int"),
    "partial_targets": ("uint", "str", "uint"),
    "oi_drift_since_vault": ("uint", "str", "uint"),
}


def memory_from_json_dict(data: object, path: str = "memory") -> Memory:
    """Validate and build a Memory (missing fields take their defaults); errors name the field path."""
    if not isinstance(data, Mapping):
        raise InputError(path, f"expected an object, got {type(data).__name__}")
    unknown = sorted(set(data) - {*_MEMORY_KEYS, "marked_at"})
    if unknown:
        raise InputError(f"{path}.{unknown[0]}", "unknown field")
    values: dict[str, Any] = {}
    if "marked_at" in data:
        values["marked_at"] = _int(data["marked_at"], f"{path}.marked_at")
    for name, shape in _MEMORY_KEYS.items():
        if name not in data:
            continue
        raw = data[name]
        where = f"{path}.{name}"
        if not isinstance(raw, Sequence) or isinstance(raw, str):
            raise InputError(where, "expected a list")
        rows: list[tuple[Any, ...]] = []
        for i, row in enumerate(raw):
            at = f"{where}[{i}]"
            if not isinstance(row, Sequence) or isinstance(row, str) or len(row) != len(shape):
                raise InputError(at, f"expected a list of {len(shape)} items")
            item: list[Any] = []
            for j, (kind, value) in enumerate(zip(shape, row, strict=True)):
                if kind == "str":
                    if not isinstance(value, str) or not value:
                        raise InputError(f"{at}[{j}]", "expected a non-empty string")
                    item.append(value)
                else:
                    item.append(_int(value, f"{at}[{j}]", signed=kind == "int"))
            rows.append(tuple(item))
        keys = [row[:-1] if len(shape) == 3 else row[0] for row in rows]
        if len(set(keys)) != len(keys):
            raise InputError(where, "duplicate key")
        values[name] = tuple(sorted(rows))
    return Memory(**values)


MAX_TOKEN_DECIMALS = 36  # token amounts are scaled by 10**decimals; real ERC-20s use ≤ 24
MAX_FEED_DECIMALS = 30  # marks are answer × 10^(30 − feed decimals): more would not be an integer scale


def _at_most(value: int, limit: int, path: str, what: str = "") -> None:
    if value > limit:
        raise InputError(path, f"must be ≤ {limit}{what}, got {value}")


def _check_assets(assets: Sequence[Asset]) -> None:
    if not assets:
        raise InputError("assets", "must list at least one asset")
    seen: dict[str, int] = {}
    for i, a in enumerate(assets):
        at = f"assets[{i}]"
        if a.symbol in seen:
            raise InputError(f"{at}.symbol", f"duplicate symbol {a.symbol!r} (also assets[{seen[a.symbol]}])")
        if a.symbol == "GLP":
            raise InputError(f"{at}.symbol", "'GLP' names the GLP token itself (memory keys use it)")
        seen[a.symbol] = i
        _at_most(a.decimals, MAX_TOKEN_DECIMALS, f"{at}.decimals")
        _at_most(a.feed_decimals, MAX_FEED_DECIMALS, f"{at}.feed_decimals", " (marks are scaled to 1e30)")
        if a.feed_answer <= 0:
            raise InputError(f"{at}.feed_answer", "must be > 0 (an oracle price)")
        if a.gmx_min_price > a.gmx_max_price:
            raise InputError(f"{at}.gmx_min_price", f"must not exceed gmx_max_price {a.gmx_max_price}")
        for name in ("liquidation_threshold_bps", "ltv_bps"):
            _at_most(getattr(a, name), 10_000, f"{at}.{name}", " bps")


def _check_values(snap: Snapshot) -> None:
    """What the decision core divides by or scales with: positive prices, sane decimals, consistent books."""
    _check_assets(snap.assets)
    g = snap.glp
    if g.aum_min > g.aum_max:
        raise InputError("glp.aum_min", f"must not exceed aum_max {g.aum_max}")
    if g.supply > 0 and g.aum_min <= 0:
        raise InputError("glp.aum_min", "must be > 0 while glp.supply > 0 (it prices GLP)")
    _at_most(g.mint_burn_fee_bps, 10_000, "glp.mint_burn_fee_bps", " bps")
    for name in ("liquidation_threshold_bps", "ltv_bps"):
        _at_most(getattr(snap.lending, name), 10_000, f"lending.{name}", " bps")
    n = len(snap.assets)
    ids: dict[int, int] = {}
    for i, book in enumerate(snap.books):
        at = f"books[{i}]"
        if book.vault_id in ids:
            raise InputError(f"{at}.vault_id", f"duplicate vault id {book.vault_id} (also books[{ids[book.vault_id]}])")
        ids[book.vault_id] = i
        for name in ("cash", "collateral", "debt"):
            if len(getattr(book, name)) != n:
                raise InputError(f"{at}.{name}", f"has {len(getattr(book, name))} entries, expected {n}")
        if book.denomination >= n:
            raise InputError(f"{at}.denomination", f"asset index {book.denomination} out of range")
        if book.pending_withdrawal_shares > book.total_shares:
            raise InputError(f"{at}.pending_withdrawal_shares",
                             f"must not exceed total_shares {book.total_shares}, got {book.pending_withdrawal_shares}")


def snapshot_from_json_dict(data: object) -> Snapshot:
    """Validate and build a Snapshot; an InputError names the offending field path and the reason.

    Beyond the types (integers as JSON integers, no digit strings): at least one asset, unique asset symbols and
    vault ids, feed answers > 0, decimals ≤ 36 and feed decimals ≤ 30, min ≤ max for GMX prices and GLP AUM,
    GLP AUM > 0 while supply > 0, bps ≤ 10,000, per-asset arrays of the right length, denominations in range,
    pending withdrawal shares ≤ total shares."""
    snap = _build(Snapshot, data, "")
    if snap.version != SNAPSHOT_VERSION:
        raise InputError("version", f"unsupported snapshot version {snap.version} (expected {SNAPSHOT_VERSION})")
    _check_values(snap)
    return snap
