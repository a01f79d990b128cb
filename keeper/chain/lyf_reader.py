"""The LYF reader: a leveraged-LP position's state for one block, in one `Multicall3.aggregate3` eth_call.

Reads the pair's reserves and LP supply, the position's LP (staked + loose), both debts with interest
accrued to the block, its pending farm rewards, its loose volatile and loose stable, the oracle and the token
decimals, and returns a `keeper.decide.lyf.LyfState` in smallest units. Must not decide anything; a failed
or malformed answer is a ReadError.

Loose tokens (held by the position outside the LP) are in the state because the contract counts them in
assets: loose volatile (the swap dust an earlier rebalance left) is `LyfState.loose_volatile`; loose stable
is added to `pending_rewards_stable`, which the planner and the contract treat identically (counted in
assets, spendable by the rebalance's repayment once the rewards are claimed). So `onchain_leverage(state)`
is the contract's `leverageWad` / 1e18 before its floor.

Execution time: with `execute_at` (a timestamp ≥ the block's) the debts and pending rewards are the
position's `debtsAt` / `pendingRewardsAt` projections — what a rebalance mined at that timestamp will owe
and claim if nothing else touches the lender or the farm first — so a plan made from this block's read is
exact for the block that executes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from web3 import Web3

from keeper.chain.reader import Call, multicall
from keeper.decide.lyf import LyfState
from keeper.errors import InputError, ReadError

FEE_BPS = 30  # UniPair (Uniswap V2): 0.3% on the amount in


class LyfAddresses(Protocol):
    """The addresses the reader needs (`keeper.devnet.lyf.LyfDeployment` has them)."""

    @property
    def pair(self) -> str: ...
    @property
    def position(self) -> str: ...
    @property
    def volatile(self) -> str: ...
    @property
    def stable(self) -> str: ...
    @property
    def feed(self) -> str: ...
    @property
    def multicall(self) -> str: ...


def lyf_calls(d: LyfAddresses) -> list[Call]:
    return [
        Call(d.pair, "getReserves()", outputs=("uint112", "uint112", "uint32")),
        Call(d.pair, "totalSupply()"),
        Call(d.position, "lpBalance()"),
        Call(d.position, "debts()", outputs=("uint256", "uint256")),
        Call(d.position, "pendingRewards()"),
        Call(d.stable, "balanceOf(address)", (d.position,)),
        Call(d.volatile, "balanceOf(address)", (d.position,)),
        Call(d.feed, "latestRoundData()", outputs=("uint80", "int256", "uint256", "uint256", "uint80")),
        Call(d.feed, "decimals()", outputs=("uint8",)),
        Call(d.volatile, "decimals()", outputs=("uint8",)),
        Call(d.stable, "decimals()", outputs=("uint8",)),
    ]


@dataclass(frozen=True)
class LyfSnapshot:
    """`LyfState` plus what the daemon's guards need: the feed's age and the block's time."""

    state: LyfState
    feed_updated_at: int
    block_timestamp: int
    stable_decimals: int
    min_leverage_bps: int  # the position contract's post-rebalance bounds (it reverts outside them)
    max_leverage_bps: int
    max_delta_units: int


def read_lyf_state(w3: Web3, d: LyfAddresses, block: int, execute_at: int | None = None) -> LyfState:
    """The position and its pool at `block` (see the module docstring for loose tokens and `execute_at`)."""
    return read_lyf_snapshot(w3, d, block, execute_at).state


def read_lyf_snapshot(w3: Web3, d: LyfAddresses, block: int, execute_at: int | None = None) -> LyfSnapshot:
    """The position, its pool, the feed's `updatedAt` and the block timestamp at `block`, in one eth_call;
    debts and pending rewards projected to `execute_at` when given (see the module docstring)."""
    calls = lyf_calls(d)
    if execute_at is not None:  # same outputs, projected: debtsAt / pendingRewardsAt replace debts / pendingRewards
        calls[3] = Call(d.position, "debtsAt(uint256)", (execute_at,), outputs=("uint256", "uint256"))
        calls[4] = Call(d.position, "pendingRewardsAt(uint256)", (execute_at,))
    calls = [
        *calls,
        Call(d.multicall, "getCurrentBlockTimestamp()"),
        Call(d.position, "minLeverageBps()"),
        Call(d.position, "maxLeverageBps()"),
        Call(d.position, "maxDeltaUnits()"),
    ]
    (
        (reserve0, reserve1, _),
        (supply,),
        (lp_balance,),
        (debt_volatile, debt_stable),
        (pending,),
        (loose_stable,),
        (loose_volatile,),
        (_, answer, _, updated_at, _),
        (feed_decimals,),
        (volatile_decimals,),
        (stable_decimals,),
        (timestamp,),
        (min_leverage_bps,),
        (max_leverage_bps,),
        (max_delta_units,),
    ) = multicall(w3, d.multicall, calls, block)
    if answer <= 0:
        raise ReadError(f"LYF oracle {d.feed} answered {answer} at block {block}")
    if supply == 0:
        raise ReadError(f"LYF pair {d.pair} has no liquidity at block {block}")
    try:
        state = LyfState(
            reserve_volatile=reserve0,
            reserve_stable=reserve1,
            lp_supply=supply,
            lp_balance=lp_balance,
            debt_volatile=debt_volatile,
            debt_stable=debt_stable,
            pending_rewards_stable=pending + loose_stable,
            price_num=answer * 10**stable_decimals,
            price_den=10 ** (feed_decimals + volatile_decimals),
            fee_bps=FEE_BPS,
            loose_volatile=loose_volatile,
        )
    except InputError as exc:  # an answer the planner cannot take (e.g. empty reserves): the read is bad
        raise ReadError(f"LYF position {d.position} at block {block}: {exc}") from None
    return LyfSnapshot(state, updated_at, timestamp, stable_decimals, min_leverage_bps, max_leverage_bps,
                       max_delta_units)
