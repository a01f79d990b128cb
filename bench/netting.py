"""Benchmark: one netted rebalance vs executing each vault on its own, on the devnet, in one run.

Scenario: the reference system plus extra vaults (USDC/ETH/BTC denominations, deposits of varied size)
so that N vaults exist; prices then move (ETH +9%, BTC −6%) so the seeded vaults must rebalance in
different directions while the new vaults need their first fit. The decision core plans once; the
plan is executed (a) netted into one `VaultManager.rebalance` and (b) — from the same chain snapshot
(evm_snapshot/evm_revert) — as one rebalance per vault. Measured on chain: GLP-trade notional
(token side, USD at the oracle), transactions, gas used, GMX fees paid (USD).

    .venv/bin/python -m bench.netting [--sizes 3,50]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

from web3 import Web3
from web3.logs import DISCARD

from keeper.chain.reader import Addresses, SnapshotReader
from keeper.daemon.app import plan_changes
from keeper.decide import Rules, decide
from keeper.devnet.anvil import DEV_ACCOUNTS, Anvil, rpc
from keeper.devnet.deploy import Deployment, contract, deploy_reference_system, send
from keeper.devnet.market import Market
from keeper.net import compare_notional, net_changes, oracle_from_snapshot, order_abi, separate_plans

USD30 = 10**30


def add_vaults(w3: Web3, d: Deployment, total: int) -> None:
    vm = contract(w3, "VaultManager", d.vault_manager)
    market = Market(w3, d)
    owner = DEV_ACCOUNTS[0]
    sizes = {0: 120_000 * 10**6, 1: 40 * 10**18, 2: 2 * 10**8}
    for k in range(vm.functions.vaultCount().call(), total):
        denomination = k % 3
        send(w3, vm.functions.addVault(denomination), owner)
        market.deposit(d.users[k % 2], k, sizes[denomination] * (1 + k % 5))
    send(w3, vm.functions.processBuffers(list(range(total))), d.keeper)


def execute(w3: Web3, d: Deployment, orders: list[Any]) -> tuple[int, int, int]:
    """Send each order from the keeper; return (transactions, gas used, fee tokens value in USD×1e30)."""
    vm = contract(w3, "VaultManager", d.vault_manager)
    gas = fees = 0
    prices = {
        d.tokens[s]: contract(w3, "PriceFeed", d.feeds[s]).functions.latestRoundData().call()[1] for s in d.tokens
    }
    decimals = {d.tokens["USDC"]: 6, d.tokens["WETH"]: 18, d.tokens["WBTC"]: 8}
    for order in orders:
        receipt = send(w3, vm.functions.rebalance(order), d.keeper, "rebalance")
        gas += int(receipt["gasUsed"])
        for event in vm.events.GlpTraded().process_receipt(receipt, errors=DISCARD):
            token = Web3.to_checksum_address(event["args"]["token"])
            fees += int(event["args"]["feeTokens"]) * prices[token] * 10**22 // 10 ** decimals[token]
    return len(orders), gas, fees


def scenario(w3: Web3, d: Deployment, url: str, vaults: int) -> dict[str, Any]:
    base = rpc(url, "evm_snapshot")
    try:
        add_vaults(w3, d, vaults)
        Market(w3, d).set_prices({"WETH": Decimal(3270), "WBTC": Decimal(56400)})
        reader = SnapshotReader(
            w3,
            Addresses(d.vault_manager, d.multicall, d.gmx_vault, d.glp_manager, d.reward_router, d.pool, d.glp),
            d.keeper,
        )
        snap = reader.read()
        rules = {b.vault_id: Rules(cost_gate_bps=10_000, notional_cap_usd=10**9) for b in snap.books}
        decision = decide(snap, rules, replace(snap.memory))
        assert decision.plan is not None, [r.reason() for r in decision.triggers if r.fired] + [
            h.reason() for h in decision.halts
        ]
        changes = plan_changes(decision.plan, snap, rules)
        oracle = oracle_from_snapshot(snap)
        deadline = snap.block_timestamp + 3600
        netted = net_changes(
            changes,
            oracle,
            slippage_bps=60,
            max_slippage_bps=100,
            deadline=deadline,
            books={b.vault_id: b for b in snap.books},
        )
        alone = separate_plans(changes, oracle, slippage_bps=60, max_slippage_bps=100, deadline=deadline)
        comparison = compare_notional(netted)
        mark = rpc(url, "evm_snapshot")
        n_tx, n_gas, n_fees = execute(w3, d, [order_abi(netted.order)])
        rpc(url, "evm_revert", [mark])
        s_tx, s_gas, s_fees = execute(w3, d, [order_abi(p.order) for p in alone if p.order.deltas])
        return {
            "vaults": vaults,
            "changed": len(changes),
            "netted_usd": Fraction(comparison.netted_usd30, USD30),
            "separate_usd": Fraction(comparison.separate_usd30, USD30),
            "netted_tx": n_tx,
            "separate_tx": s_tx,
            "netted_gas": n_gas,
            "separate_gas": s_gas,
            "netted_fees": Fraction(n_fees, USD30),
            "separate_fees": Fraction(s_fees, USD30),
        }
    finally:
        rpc(url, "evm_revert", [base])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3,50")
    args = parser.parse_args()
    rows = []
    with Anvil.start(extra_args=("--gas-limit", "100000000", "--code-size-limit", "100000")) as node:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 120}))
        d = deploy_reference_system(w3)
        for n in (int(s) for s in args.sizes.split(",")):
            rows.append(scenario(w3, d, node.url, n))

    def usd(x: Fraction) -> str:
        return f"{float(x):,.0f}"

    print(
        "| vaults (changed) | GLP notional netted / separate (USD) | txs netted / separate | "
        "gas netted / separate | GMX fees netted / separate (USD) |"
    )
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['vaults']} ({r['changed']}) | {usd(r['netted_usd'])} / {usd(r['separate_usd'])} "
            f"({float(r['netted_usd'] / r['separate_usd']) * 100:.0f}%) | {r['netted_tx']} / {r['separate_tx']} | "
            f"{r['netted_gas']:,} / {r['separate_gas']:,} ({r['netted_gas'] / r['separate_gas'] * 100:.0f}%) | "
            f"{float(r['netted_fees']):,.2f} / {float(r['separate_fees']):,.2f} |"
        )


if __name__ == "__main__":
    main()
