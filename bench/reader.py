"""Benchmark: snapshot reads per tick, this keeper's one-call reader vs a naive one-call-per-value reader.

For N = 1, 10, 100, 1000 vaults (a fresh VaultManager with N vaults on the devnet, the rest of the
reference system shared), measures requests per tick and tick wall time (median of R runs) for
  - keeper:  keeper.chain.reader.SnapshotReader — one Multicall3.aggregate3 eth_call pinned to a block;
  - naive:   web3.py contract calls, one per value, as a straightforward keeper would write them.
Both run in the same process against the same anvil, in one run. Prints a Markdown table.

    .venv/bin/python -m bench.reader [--runs 5] [--sizes 1,10,100,1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from web3 import Web3
from web3.providers import HTTPProvider

from keeper.chain.reader import Addresses, SnapshotReader
from keeper.devnet.anvil import DEV_ACCOUNTS, Anvil, rpc
from keeper.devnet.deploy import Deployment, _deploy, contract, deploy_reference_system


class CountingProvider(HTTPProvider):
    def __init__(self, url: str) -> None:
        super().__init__(url, request_kwargs={"timeout": 120})
        self.count = 0

    def make_request(self, method: Any, params: Any) -> Any:
        self.count += 1
        return super().make_request(method, params)


def manager_with(w3: Web3, d: Deployment, n: int) -> str:
    """A fresh VaultManager over the reference assets with `n` vaults (denominations cycling)."""
    owner = DEV_ACCOUNTS[0]
    tokens = [d.tokens[s] for s in ("USDC", "WETH", "WBTC")]
    feeds = [d.feeds[s] for s in ("USDC", "WETH", "WBTC")]
    vm = _deploy(w3, "VaultManager", owner, tokens, feeds, d.reward_router, d.pool, d.keeper, d.treasury, d.risk_off)
    rpc(w3.provider.endpoint_uri, "evm_setAutomine", [False])  # type: ignore[attr-defined]
    try:
        nonce = w3.eth.get_transaction_count(owner)
        for i in range(n):
            tx = vm.functions.addVault(i % 3).build_transaction({"from": owner, "nonce": nonce + i, "gas": 300_000})
            w3.eth.send_transaction(tx)
            if i % 200 == 199:
                rpc(w3.provider.endpoint_uri, "evm_mine")  # type: ignore[attr-defined]
        rpc(w3.provider.endpoint_uri, "evm_mine")  # type: ignore[attr-defined]
    finally:
        rpc(w3.provider.endpoint_uri, "evm_setAutomine", [True])  # type: ignore[attr-defined]
    assert vm.functions.vaultCount().call() == n
    return str(vm.address)


def naive_read(w3: Web3, d: Deployment, vm_address: str, block: int) -> int:
    """One web3 call per value; returns how many values were read."""
    vm = contract(w3, "VaultManager", vm_address)
    gmx = contract(w3, "Vault", d.gmx_vault)
    glpm = contract(w3, "GlpManager", d.glp_manager)
    pool = contract(w3, "Pool", d.pool)
    glp = contract(w3, "GLP", d.glp)
    router = contract(w3, "RewardRouterV2", d.reward_router)
    b = {"block_identifier": block}
    values: list[Any] = []
    for symbol in ("USDC", "WETH", "WBTC"):
        token, feed = d.tokens[symbol], contract(w3, "PriceFeed", d.feeds[symbol])
        # the lending reserve through Aave v3's interface, as on a real deployment: the reserve data
        # (configuration bitmap, rate, token addresses), then the aToken and variable debt token
        reserve = pool.functions.getReserveData(token).call(**b)
        a_token, debt_token = contract(w3, "AToken", reserve[8]), contract(w3, "VariableDebtToken", reserve[10])
        values += [
            feed.functions.latestRoundData().call(**b),
            gmx.functions.getMinPrice(token).call(**b),
            gmx.functions.getMaxPrice(token).call(**b),
            gmx.functions.poolAmounts(token).call(**b),
            gmx.functions.reservedAmounts(token).call(**b),
            gmx.functions.guaranteedUsd(token).call(**b),
            gmx.functions.globalShortSizes(token).call(**b),
            glpm.functions.getGlobalShortAveragePrice(token).call(**b),
            reserve,
            a_token.functions.balanceOf(vm_address).call(**b),
            debt_token.functions.balanceOf(vm_address).call(**b),
            debt_token.functions.totalSupply().call(**b),
        ]
    values += [
        glp.functions.totalSupply().call(**b),
        glpm.functions.getAum(True).call(**b),
        glpm.functions.getAum(False).call(**b),
        gmx.functions.mintBurnFeeBasisPoints().call(**b),
        router.functions.claimable(vm_address).call(**b),
        pool.functions.getUserAccountData(vm_address).call(**b),
        vm.functions.paused().call(**b),
        vm.functions.rebalanceCount().call(**b),
        vm.functions.lastRebalanceAt().call(**b),
        vm.functions.lastCycleAt().call(**b),
        w3.eth.get_balance(d.keeper, block),
    ]
    for i in range(3):
        values.append(vm.functions.unassignedDebt(i).call(**b))
    for v in range(vm.functions.vaultCount().call(**b)):
        values += [vm.functions.getBook(v).call(**b), vm.functions.equityUsd(v).call(**b)]
    return len(values)


def measure(sizes: list[int], runs: int) -> list[dict[str, Any]]:
    rows = []
    with Anvil.start(extra_args=("--gas-limit", "100000000", "--code-size-limit", "100000")) as node:
        w3 = Web3(HTTPProvider(node.url, request_kwargs={"timeout": 120}))
        d = deploy_reference_system(w3)
        for n in sizes:
            vm_address = manager_with(w3, d, n)
            addresses = Addresses(vm_address, d.multicall, d.gmx_vault, d.glp_manager, d.reward_router, d.pool, d.glp)
            fast_provider, naive_provider = CountingProvider(node.url), CountingProvider(node.url)
            fast_w3, naive_w3 = Web3(fast_provider), Web3(naive_provider)
            reader = SnapshotReader(fast_w3, addresses, d.keeper)
            block = w3.eth.block_number
            reader.read(block)  # static layout, read once per process
            fast_times, naive_times = [], []
            for _ in range(runs):
                fast_provider.count = 0
                t0 = time.perf_counter()
                snap = reader.read(block)
                fast_times.append(time.perf_counter() - t0)
                fast_requests = fast_provider.count
                naive_provider.count = 0
                t0 = time.perf_counter()
                naive_read(naive_w3, d, vm_address, block)
                naive_times.append(time.perf_counter() - t0)
                naive_requests = naive_provider.count
            assert len(snap.books) == n
            rows.append(
                {
                    "n": n,
                    "keeper_requests": fast_requests,
                    "naive_requests": naive_requests,
                    "keeper_ms": statistics.median(fast_times) * 1000,
                    "naive_ms": statistics.median(naive_times) * 1000,
                }
            )
            print(
                f"N={n}: keeper {fast_requests} req {rows[-1]['keeper_ms']:.1f} ms; "
                f"naive {naive_requests} req {rows[-1]['naive_ms']:.1f} ms",
                file=sys.stderr,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="1,10,100,1000")
    args = parser.parse_args()
    rows = measure([int(s) for s in args.sizes.split(",")], args.runs)
    print(
        "| vaults | keeper requests/tick | naive requests/tick | keeper tick (ms, median) "
        "| naive tick (ms, median) | speed-up |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['n']} | {r['keeper_requests']} | {r['naive_requests']} | {r['keeper_ms']:.1f} | "
            f"{r['naive_ms']:.1f} | {r['naive_ms'] / r['keeper_ms']:.1f}× |"
        )


if __name__ == "__main__":
    main()
