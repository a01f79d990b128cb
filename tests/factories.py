"""Small, explicit Snapshot builders for unit tests of the pure core (no chain)."""

from __future__ import annotations

from keeper.snapshot import Asset, Book, Glp, LendingAccount, Manager, Snapshot

USD30 = 10**30


def asset(symbol: str, decimals: int, price_usd: int, *, stable: bool = False, pool: int = 0) -> Asset:
    return Asset(
        symbol=symbol, address="0x" + f"{abs(hash(symbol)) % 16**40:040x}", decimals=decimals, is_stable=stable,
        feed="0x" + "fe" * 20, feed_decimals=8, feed_answer=price_usd * 10**8, feed_updated_at=1_700_000_000,
        gmx_min_price=price_usd * USD30, gmx_max_price=price_usd * USD30, pool_amount=pool * 10**decimals,
        reserved_amount=0, guaranteed_usd=0, global_short_size=0, global_short_average_price=0,
        liquidation_threshold_bps=8000, ltv_bps=7500, borrow_cap_tokens=0, borrow_rate_ray=0,
        account_collateral=0, account_debt=0, unassigned_debt=0,
    )


def snapshot(books: tuple[Book, ...] = ()) -> Snapshot:
    assets = (
        asset("USDC", 6, 1, stable=True, pool=50_000_000),
        asset("WETH", 18, 3000, pool=10_000),
        asset("WBTC", 8, 60000, pool=500),
    )
    return Snapshot(
        chain_id=31337, block_number=100, block_timestamp=1_700_000_000, assets=assets,
        glp=Glp(supply=110_000_000 * 10**18, aum_max=110_000_000 * USD30, aum_min=110_000_000 * USD30,
                mint_burn_fee_bps=30, pending_rewards_weth=0),
        lending=LendingAccount(0, 0, 0, 0, 0, 2**256 - 1),
        manager=Manager(address="0x" + "aa" * 20, paused=False, rebalance_count=0, last_rebalance_at=0,
                        last_cycle_at=0, last_profit_at=0, last_harvest_at=0),
        books=books, keeper_address="0x" + "bb" * 20, keeper_balance_wei=10**18,
    )


def book(vault_id: int = 0, denomination: int = 0, glp: int = 0) -> Book:
    return Book(vault_id=vault_id, denomination=denomination, glp=glp, cash=(0, 0, 0), collateral=(0, 0, 0),
                debt=(0, 0, 0), pending_deposits=0, pending_withdrawal_shares=0, total_shares=0, equity_usd=0)
