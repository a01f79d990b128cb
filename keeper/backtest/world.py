"""The "ledger of the world" a backtest runs against instead of a chain. Pure; on-chain integers only.

Owns: the GLP pool valuation (GlpManager's AUM from pool amounts, reserved amounts, guaranteedUsd and the
traders' short PnL, docs/contracts.md), the lending account (collateral / debt per asset → health factor
like the Pool: Σ collateral × price × LT / debt), interest accrual into `unassigned_debt`, the books per
vault, the manager marks, and building a `Snapshot` from one series row and that state. Execution of an
`Order` is simulated at the oracle marks minus GMX's flat mint/burn fee (the devnet's formulas).

Simplification (docs/backtest.md): the GLP market is exogenous. Pool amounts and GLP supply come from the
series; the strategy's own mints and redeems do not move them (a price taker).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from keeper.backtest.series import FEED_DECIMALS, AssetSpec, Row
from keeper.net import ExecutedLeg, Oracle, Order
from keeper.snapshot import Asset, Book, Glp, LendingAccount, Manager, Memory, Snapshot, book_equity_usd30

USD30 = 10**30
WAD = 10**18
BPS = 10_000
YEAR = 365 * 24 * 3600
MAX_UINT = 2**256 - 1
FEE_BPS = 30  # GMX mintBurnFeeBasisPoints (devnet)
FEED_TO_30: int = int(10 ** (30 - FEED_DECIMALS))
BASE_TO_30 = 10**22  # Aave base currency (USD × 1e8) → USD × 1e30


def price30(answer: int) -> int:
    """USD × 1e30 per whole token from a Chainlink answer with 8 decimals (`VaultManager.priceOf`)."""
    return answer * FEED_TO_30


def aum_usd30(specs: Sequence[AssetSpec], price: Sequence[int], pool: Sequence[int], reserved: Sequence[int],
              *, short_size: Sequence[int], short_avg: Sequence[int], guaranteed: Sequence[int]) -> int:
    """GlpManager.getAum (no spread, so min = max): Σ stables pool × price + Σ volatile (guaranteedUsd +
    (pool − reserved) × price) ± the shorts' PnL `size × |price − avg| / avg` (added when shorts lose).
    Each term rounds down; never below 0."""
    total = 0
    for i, s in enumerate(specs):
        p = price[i] * FEED_TO_30
        unit = 10**s.decimals
        if s.is_stable:
            total += pool[i] * p // unit
            continue
        total += guaranteed[i] + (pool[i] - reserved[i]) * p // unit
        avg = short_avg[i]
        if short_size[i] and avg:
            delta = short_size[i] * abs(p - avg) // avg
            total += delta if p > avg else -delta
    return max(total, 0)


def row_aum_usd30(specs: Sequence[AssetSpec], row: Row) -> int:
    return aum_usd30(specs, row.price, row.pool, row.reserved, short_size=row.short_size, short_avg=row.short_avg,
                     guaranteed=row.guaranteed)


@dataclass
class World:
    """The strategy's state between ticks. `books` are frozen `Book`s replaced on execution."""

    specs: tuple[AssetSpec, ...]
    books: tuple[Book, ...]
    unassigned: list[int]  # accrued interest not yet assigned to a book (Asset.unassigned_debt)
    memory: Memory = field(default_factory=Memory)
    rebalance_count: int = 0
    last_rebalance_at: int = 0
    last_cycle_at: int = 0
    last_profit_at: int = 0
    last_harvest_at: int = 0
    carry: list[int] = field(default_factory=list)  # interest remainders (numerator units), never lost

    def __post_init__(self) -> None:
        if not self.carry:
            self.carry = [0] * len(self.specs)


def funded_world(specs: tuple[AssetSpec, ...], first: Row, vaults: int, equity_usd: int) -> World:
    """`vaults` vaults, denominations cycling over the assets in order, each holding `equity_usd` of its
    denomination as cash (its buffer) at the first row's prices; nothing invested yet."""
    n = len(specs)
    books = []
    for v in range(vaults):
        d = v % n
        cash = [0] * n
        cash[d] = equity_usd * 10 ** specs[d].decimals * 10**FEED_DECIMALS // first.price[d]
        zero = (0,) * n
        books.append(Book(vault_id=v, denomination=d, glp=0, cash=tuple(cash), collateral=zero, debt=zero,
                          pending_deposits=0, pending_withdrawal_shares=0, total_shares=10**24, equity_usd=0))
    return World(specs, tuple(books), [0] * n)


def accrue_interest(world: World, seconds: int) -> None:
    """Simple interest for `seconds` on the account's debt per asset at its annual rate, into unassigned
    debt (floor; the remainder is carried to the next row)."""
    if seconds <= 0:
        return
    for i, s in enumerate(world.specs):
        if not s.borrow_rate_bps:
            continue
        debt = sum(b.debt[i] for b in world.books) + world.unassigned[i]
        x = debt * s.borrow_rate_bps * seconds + world.carry[i]
        add, world.carry[i] = divmod(x, BPS * YEAR)
        world.unassigned[i] += add


_ADDRESSES = {sym: "0x" + f"{k + 1:040x}" for k, sym in enumerate(("USDC", "WETH", "WBTC"))}
_FEED = "0x" + "fe" * 20
_MANAGER = "0x" + "aa" * 20
_KEEPER = "0x" + "bb" * 20


def lending_account(specs: Sequence[AssetSpec], p30: Sequence[int], coll: Sequence[int],
                    debt: Sequence[int]) -> LendingAccount:
    """`Pool.getUserAccountData` of the strategy account (base values USD × 1e8, HF × 1e18, floor)."""
    coll_usd = [coll[i] * p30[i] // 10 ** s.decimals for i, s in enumerate(specs)]
    debt_usd = sum(debt[i] * p30[i] // 10 ** s.decimals for i, s in enumerate(specs))
    total_coll = sum(coll_usd)
    lt_usd = sum(c * s.liquidation_threshold_bps for c, s in zip(coll_usd, specs, strict=True))
    ltv_usd = sum(c * s.ltv_bps for c, s in zip(coll_usd, specs, strict=True))
    lt = lt_usd // total_coll if total_coll else 0
    ltv = ltv_usd // total_coll if total_coll else 0
    hf = MAX_UINT if debt_usd == 0 else lt_usd * WAD // (BPS * debt_usd)
    available = max(0, ltv_usd // BPS - debt_usd)
    return LendingAccount(total_coll // BASE_TO_30, debt_usd // BASE_TO_30, available // BASE_TO_30, lt, ltv, hf)


def vault_hf_wad(specs: Sequence[AssetSpec], p30: Sequence[int], book: Book) -> int | None:
    """A vault's own health factor × 1e18 (its collateral and debt only); None without debt."""
    debt = sum(book.debt[i] * p30[i] // int(10**s.decimals) for i, s in enumerate(specs))
    if debt == 0:
        return None
    coll = sum(book.collateral[i] * p30[i] // int(10**s.decimals) * s.liquidation_threshold_bps
               for i, s in enumerate(specs))
    hf: int = coll * WAD // (BPS * debt)
    return hf


def snapshot(world: World, row: Row, block_number: int) -> Snapshot:
    """The Snapshot the chain reader would return at this row with this state (memory: the world's)."""
    specs = world.specs
    n = len(specs)
    p30 = [price30(a) for a in row.price]
    coll = [sum(b.collateral[i] for b in world.books) for i in range(n)]
    debt = [sum(b.debt[i] for b in world.books) + world.unassigned[i] for i in range(n)]
    ts = row.timestamp
    assets = tuple(
        Asset(symbol=s.symbol, address=_ADDRESSES.get(s.symbol, _FEED), decimals=s.decimals, is_stable=s.is_stable,
              feed=_FEED, feed_decimals=FEED_DECIMALS, feed_answer=row.price[i], feed_updated_at=ts,
              gmx_min_price=p30[i], gmx_max_price=p30[i], pool_amount=row.pool[i], reserved_amount=row.reserved[i],
              guaranteed_usd=row.guaranteed[i], global_short_size=row.short_size[i],
              global_short_average_price=row.short_avg[i], liquidation_threshold_bps=s.liquidation_threshold_bps,
              ltv_bps=s.ltv_bps, borrow_cap_tokens=0, borrow_rate_ray=s.borrow_rate_bps * 10**23,
              account_collateral=coll[i], account_debt=debt[i], unassigned_debt=world.unassigned[i])
        for i, s in enumerate(specs))
    aum = row_aum_usd30(specs, row)
    glp = Glp(supply=row.glp_supply, aum_max=aum, aum_min=aum, mint_burn_fee_bps=FEE_BPS, pending_rewards_weth=0)
    books = tuple(b.with_equity(book_equity_usd30(assets, glp, b)) for b in world.books)
    manager = Manager(address=_MANAGER, paused=False, rebalance_count=world.rebalance_count,
                      last_rebalance_at=world.last_rebalance_at, last_cycle_at=world.last_cycle_at,
                      last_profit_at=world.last_profit_at, last_harvest_at=world.last_harvest_at)
    return Snapshot(chain_id=31337, block_number=block_number, block_timestamp=ts, assets=assets, glp=glp,
                    lending=lending_account(specs, p30, coll, debt), manager=manager, books=books,
                    keeper_address=_KEEPER, keeper_balance_wei=10**21, memory=world.memory)


def fill_at_marks(order: Order, oracle: Oracle) -> tuple[ExecutedLeg, ...]:
    """GMX devnet execution with prices equal to the oracle marks: a flat fee (`oracle.fee_bps`, rounded up
    in the pool's favour), mint GLP out = value after fee at the GLP mark, redeem tokens = GLP value at the
    token mark minus the fee (same formulas as tests/net/sim.py)."""
    out = []
    f = oracle.fee_bps
    for leg in order.glp:
        if leg.glp > 0:
            after = leg.token_amount * (BPS - f) // BPS
            glp = math.floor(oracle.tokens_to_glp(leg.asset, after))
            out.append(ExecutedLeg(leg.asset, glp, leg.token_amount, leg.token_amount - after))
        else:
            redemption = math.floor(oracle.glp_to_tokens(leg.asset, -leg.glp))
            got = redemption * (BPS - f) // BPS
            out.append(ExecutedLeg(leg.asset, -leg.glp, got, redemption - got))
    return tuple(out)
