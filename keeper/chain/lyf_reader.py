"""The LYF reader: a leveraged-LP position's state for one block, in one `Multicall3.aggregate3` eth_call.

Reads the pair's reserves and LP supply, the position's LP (staked + loose), both debts with interest
accrued to the block, its pending farm rewards and loose stable, the oracle and the token decimals, and
returns a `keeper.decide.lyf.LyfState` in smallest units. Must not decide anything; a failed or
malformed answer is a ReadError.

Loose tokens: `LyfState` has no field for tokens the position holds outside the LP. Loose stable is
folded into `pending_rewards_stable`: the planner treats that amount exactly as the contract treats loose
stable (counted in assets, spendable by the rebalance's repay once the rewards are claimed). Loose
volatile (the swap's indivisible dust a rebalance leaves, ~1e10 units) is not representable and is left
out: the contract counts it in assets, so the planner's leverage differs by dust × price / equity
(≈ 1e-13 at the devnet's numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from web3 import Web3

from keeper.chain.reader import Call, multicall
from keeper.decide.lyf import LyfState
from keeper.errors import ReadError

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


def read_lyf_state(w3: Web3, d: LyfAddresses, block: int) -> LyfState:
    """The position and its pool at `block` (see the module docstring for loose tokens)."""
    return read_lyf_snapshot(w3, d, block).state


def read_lyf_snapshot(w3: Web3, d: LyfAddresses, block: int) -> LyfSnapshot:
    """The position, its pool, the feed's `updatedAt` and the block timestamp at `block`, in one eth_call."""
    calls = [
        *lyf_calls(d),
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
    )
    return LyfSnapshot(state, updated_at, timestamp, stable_decimals, min_leverage_bps, max_leverage_bps,
                       max_delta_units)
