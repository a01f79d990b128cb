"""Benchmark: one LYF rebalance on the devnet — gas used, final leverage error and delta.

Starts a private anvil (stopped by its pid at the end), deploys the LYF devnet system (keeper.devnet.lyf:
pool 250k AVAX / 5M USDC at $20, a 1M USDC position at 3.00×, lender at AVAX 3% / USDC 8%, farm ≈ 20% a
year) and, for each scenario from the same fresh state: moves the oracle and arbitrages the pool, lets
`--days` of interest and rewards accrue, reads the position at block B (time t) with the debts and rewards
projected to t + `--lag` (`debtsAt` / `pendingRewardsAt`), plans (keeper.decide.lyf.plan) and mines the
rebalance at t + lag. Prints a Markdown table: gas used (receipt), target − final leverage (contract's
`leverageWad`), final delta (LP volatile − volatile debt, AVAX smallest units), the volatile interest of
the lag that the projection covered, and the swap.

A fall lowers leverage: removing LP can only lower it further, so the plan fixes the delta and ends below
target (re-levering is not a rebalance); the owner widens the contract's floor for that scenario.

    .venv/bin/python -m bench.lyf_rebalance [--days 30] [--lag 12]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from web3 import Web3

from keeper.chain.lyf_reader import read_lyf_state
from keeper.daemon.lyf_job import rebalance_args
from keeper.decide.lyf import BPS, LyfRules, plan, position
from keeper.devnet.anvil import Anvil, rpc
from keeper.devnet.deploy import contract, send
from keeper.devnet.lyf import BOUNDS, deploy_lyf, move_price

WAD = 10**18
GAS_LIMIT = 1_800_000  # the budget, also the transaction's gas limit


@dataclass(frozen=True)
class Result:
    scenario: str
    gas: int
    leverage_before: Fraction
    leverage_after: Fraction  # the contract's leverageWad / 1e18
    delta: int
    lag_interest: int  # volatile debt units accrued between the read and the execution (covered by the plan)
    swap: str


def _dec(value: Fraction, places: int) -> str:
    return f"{Decimal(value.numerator) / Decimal(value.denominator):.{places}f}"


def run_scenario(w3: Web3, anvil: Anvil, *, name: str, move: Fraction, days: int, lag: int) -> Result:
    d = deploy_lyf(w3)
    pos = contract(w3, "LyfPosition", d.position)
    # a second after the seed mint: the arbitrage's pair update then starts the TWAP accumulators, as on a live
    # pool (otherwise the rebalance's first accumulator writes cost ~27k more gas, depending on the wall clock)
    rpc(anvil.url, "evm_increaseTime", [1])
    rpc(anvil.url, "evm_mine")
    move_price(w3, d, move)
    rpc(anvil.url, "evm_increaseTime", [days * 86_400])
    rpc(anvil.url, "evm_mine")
    block = w3.eth.get_block("latest")
    read_at = int(block["timestamp"])
    at_read = read_lyf_state(w3, d, block["number"])
    state = read_lyf_state(w3, d, block["number"], execute_at=read_at + lag)
    p = plan(state, LyfRules())
    if p.final_leverage * BPS < BOUNDS[0]:  # a fall: the owner lets the rebalance end below the usual floor
        rpc(anvil.url, "evm_setNextBlockTimestamp", [read_at])
        send(w3, pos.functions.setBounds(int(p.final_leverage * BPS) - 50, BOUNDS[1], BOUNDS[2]), d.owner)
    rpc(anvil.url, "evm_setNextBlockTimestamp", [read_at + lag])
    tx = pos.functions.rebalance(*rebalance_args(p, read_at + lag + 600)).transact({"from": d.keeper, "gas": GAS_LIMIT})
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    if receipt["status"] != 1:
        raise SystemExit(f"{name}: the rebalance reverted")
    swap = (f"{p.stable_to_swap / 10**6:,.2f} USDC → AVAX" if p.stable_to_swap
            else f"{p.volatile_to_swap / 10**18:,.4f} AVAX → USDC")
    return Result(
        scenario=name, gas=int(receipt["gasUsed"]), leverage_before=position(at_read).leverage,
        leverage_after=Fraction(pos.functions.leverageWad().call(), WAD), delta=pos.functions.delta().call(),
        lag_interest=state.debt_volatile - at_read.debt_volatile,
        swap=f"{swap} ({_dec(p.slippage_bps, 1)} bps)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="days of interest and rewards before the read")
    parser.add_argument("--lag", type=int, default=12, help="seconds between the read and the execution")
    args = parser.parse_args()
    scenarios = (
        ("AVAX +10%", Fraction(11, 10)),
        ("AVAX +20%", Fraction(12, 10)),
        ("AVAX −8% (ends below target by design)", Fraction(92, 100)),
    )
    target = Fraction(LyfRules().target_leverage_bps, BPS)
    results = []
    with Anvil.start() as node:  # stopped by pid on exit
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        snapshot = rpc(node.url, "evm_snapshot")
        for name, move in scenarios:
            results.append(run_scenario(w3, node, name=name, move=move, days=args.days, lag=args.lag))
            rpc(node.url, "evm_revert", [snapshot])
            snapshot = rpc(node.url, "evm_snapshot")
    print(f"{args.days} days of interest and rewards, executed {args.lag} s after the read; target "
          f"{_dec(target, 2)}×, gas budget {GAS_LIMIT:,}\n")
    print("| scenario | gas used | leverage before → after | target − final | final delta (units) "
          "| lag interest covered (units) | swap (slippage incl. fee) |")
    print("|---|---:|---|---:|---:|---:|---|")
    for r in results:
        error = target - r.leverage_after
        shown = f"{Decimal(error.numerator) / Decimal(error.denominator):.2e}"
        print(f"| {r.scenario} | {r.gas:,} | {_dec(r.leverage_before, 4)} → {_dec(r.leverage_after, 12)} "
              f"| {shown} | {r.delta} | {r.lag_interest:,} | {r.swap} |")
    worst = max(r.gas for r in results)
    print(f"\nmax gas {worst:,} ({'within' if worst < GAS_LIMIT else 'OVER'} the {GAS_LIMIT:,} budget)")


if __name__ == "__main__":
    main()
