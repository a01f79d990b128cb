"""Snapshot builders and plan application for the decision-core tests (pure, no chain).

`market()` is a devnet-like market: USDC $1 (6 dec, stable), WETH $3000 (18), WBTC $60,000 (8); GLP AUM
$110M over 110M GLP ($1), trader OI 1000 WETH and 10 WBTC net long. `apply_plan` writes a plan's targets
into the books (as if executed exactly at the marks) and recomputes the account fields.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from keeper.decide.plan import Plan
from keeper.snapshot import Asset, Book, Glp, LendingAccount, Manager, Memory, Snapshot

USD30 = 10**30
WAD = 10**18
NOW = 1_700_000_000
MAX = 2**256 - 1


def asset(symbol: str, decimals: int, price: int, *, stable: bool = False, pool: int = 0, reserved: int = 0,
          short_usd: int = 0) -> Asset:
    return Asset(
        symbol=symbol, address="0x" + f"{sum(map(ord, symbol)):040x}", decimals=decimals, is_stable=stable,
        feed="0x" + "fe" * 20, feed_decimals=8, feed_answer=price * 10**8, feed_updated_at=NOW,
        gmx_min_price=price * USD30, gmx_max_price=price * USD30, pool_amount=pool * 10**decimals,
        reserved_amount=reserved * 10**decimals, guaranteed_usd=0, global_short_size=short_usd * USD30,
        global_short_average_price=price * USD30 if short_usd else 0,
        liquidation_threshold_bps=8000, ltv_bps=7500, borrow_cap_tokens=0, borrow_rate_ray=0,
        account_collateral=0, account_debt=0, unassigned_debt=0,
    )


def market(*, books: tuple[Book, ...] = (), eth: int = 3000, btc: int = 60_000, last_cycle_at: int = NOW - 3600,
           memory: Memory | None = None, now: int = NOW) -> Snapshot:
    assets = (
        asset("USDC", 6, 1, stable=True, pool=50_000_000),
        asset("WETH", 18, 3000, pool=10_000, reserved=2000, short_usd=3_000_000),
        asset("WBTC", 8, 60_000, pool=500, reserved=20, short_usd=600_000),
    )
    snap = Snapshot(
        chain_id=31337, block_number=100, block_timestamp=now, assets=assets,
        glp=Glp(supply=110_000_000 * 10**18, aum_max=110_000_000 * USD30, aum_min=110_000_000 * USD30,
                mint_burn_fee_bps=30, pending_rewards_weth=0),
        lending=LendingAccount(0, 0, 0, 0, 0, MAX),
        manager=Manager(address="0x" + "aa" * 20, paused=False, rebalance_count=0, last_rebalance_at=0,
                        last_cycle_at=last_cycle_at, last_profit_at=0, last_harvest_at=0),
        books=books, keeper_address="0x" + "bb" * 20, keeper_balance_wei=10**18, memory=memory or Memory(),
    )
    if eth != 3000 or btc != 60_000:
        snap = reprice(snap, {"WETH": eth, "WBTC": btc})
    return with_account(snap)


def reprice(snap: Snapshot, prices: dict[str, int]) -> Snapshot:
    """Move oracle prices (whole USD); GLP AUM follows the pool's volatile exposure (pool − OI)."""
    aum = Fraction(snap.glp.aum_min)
    assets = []
    for old_asset in snap.assets:
        a = old_asset
        if a.symbol in prices:
            old = Fraction(a.feed_answer, 10**8)
            new = prices[a.symbol]
            short = Fraction(a.global_short_size, a.global_short_average_price) if a.global_short_average_price else 0
            oi = Fraction(a.reserved_amount, 10**a.decimals) - short
            aum += (Fraction(a.pool_amount, 10**a.decimals) - oi) * (new - old) * USD30
            a = replace(a, feed_answer=new * 10**8, gmx_min_price=new * USD30, gmx_max_price=new * USD30)
        assets.append(a)
    return with_account(replace(snap, assets=tuple(assets), glp=replace(snap.glp, aum_min=int(aum), aum_max=int(aum))))


def with_account(snap: Snapshot) -> Snapshot:
    """Recompute account collateral/debt per asset and the health factor from the books (exact, floor)."""
    n = len(snap.assets)
    coll = [sum(b.collateral[i] for b in snap.books) for i in range(n)]
    debt = [sum(b.debt[i] for b in snap.books) for i in range(n)]
    assets = tuple(replace(a, account_collateral=coll[i], account_debt=debt[i] + a.unassigned_debt)
                   for i, a in enumerate(snap.assets))
    price = [Fraction(a.feed_answer * 10**22, 10**a.decimals) for a in assets]
    debt_usd = sum(((debt[i] + assets[i].unassigned_debt) * price[i] for i in range(n)), Fraction(0))
    coll_lt = sum((coll[i] * price[i] * assets[i].liquidation_threshold_bps / 10_000 for i in range(n)), Fraction(0))
    hf = MAX if debt_usd == 0 else int(coll_lt * WAD / debt_usd)
    lending = LendingAccount(int(sum(coll[i] * price[i] for i in range(n)) / 10**22), int(debt_usd / 10**22), 0,
                             8000, 7500, hf)
    return replace(snap, assets=assets, lending=lending)


def book(vault_id: int, denomination: int, *, glp: int = 0, cash: tuple[int, ...] = (0, 0, 0),
         collateral: tuple[int, ...] = (0, 0, 0), debt: tuple[int, ...] = (0, 0, 0),
         deposits: int = 0, withdraw_shares: int = 0, shares: int = 10**24) -> Book:
    return Book(vault_id=vault_id, denomination=denomination, glp=glp, cash=cash, collateral=collateral, debt=debt,
                pending_deposits=deposits, pending_withdrawal_shares=withdraw_shares, total_shares=shares,
                equity_usd=0)


def apply_plan(snap: Snapshot, plan: Plan) -> Snapshot:
    """Books take the plan's targets (execution exactly at the marks); assigned interest leaves the pool's
    unassigned debt; pending flows are left alone (processBuffers is not modelled here)."""
    books = []
    assigned = [0] * len(snap.assets)
    for b in snap.books:
        try:
            vp = plan.vault(b.vault_id)
        except KeyError:
            books.append(b)
            continue
        for i, x in enumerate(vp.interest):
            assigned[i] += x
        assert all(b.debt[i] + vp.debt[i] == vp.debt_target[i] for i in range(len(b.debt)))
        assert b.glp + vp.glp == vp.glp_target
        books.append(replace(b, glp=vp.glp_target, cash=vp.cash_target, collateral=vp.collateral_target,
                             debt=vp.debt_target))
    assets = tuple(replace(a, unassigned_debt=a.unassigned_debt - assigned[i]) for i, a in enumerate(snap.assets))
    return with_account(replace(snap, books=tuple(books), assets=assets))


def funded(equity_usd: int = 1_000_000) -> tuple[Book, ...]:
    """Three vaults holding only their buffer: USDC, WETH and WBTC, each worth `equity_usd`."""
    return (
        book(0, 0, cash=(equity_usd * 10**6, 0, 0)),
        book(1, 1, cash=(0, equity_usd * 10**18 // 3000, 0)),
        book(2, 2, cash=(0, 0, equity_usd * 10**8 // 60_000)),
    )
