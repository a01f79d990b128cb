"""Benchmark: reaction time in blocks, from a trigger condition becoming true on chain to the
rebalance that answers it being mined. anvil with 1-second blocks, the real `keeper run` daemon.

Owns the measurement only. Each event moves the ETH price by ±12% (alternating): every vault's hedge
drifts past 5% in the block that includes the price update. Measured: (block of the `Rebalanced`
event) − (block of the price update); 1 means the keeper's transaction was included in the very next
block. The same events are run twice in one invocation, each against its own fresh devnet: the keeper
as configured for the benchmark (poll 0.1 s) and, as the same-run baseline, the same daemon polling the
head once a minute like the original public keeper (`--baseline-poll 60`; on these 1 s blocks that is
60 blocks between looks, on Arbitrum's 0.25 s blocks it would be 240). Each event waits a seeded random
time in [0, poll) first, so conditions arrive at random phases of the poll loop.

    .venv/bin/python -m bench.reaction [--events 20] [--poll 0.1] [--baseline-poll 60] [--seed 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from web3 import Web3

from keeper.config import render_toml
from keeper.devnet.anvil import Anvil, free_port
from keeper.devnet.deploy import contract, deploy_reference_system, send
from keeper.devnet.session import devnet_config


def trial(poll: float, events: int, seed: int) -> list[int]:
    """One devnet, one daemon polling every `poll` s, `events` price moves; the reaction of each in blocks."""
    rng = random.Random(seed)  # reproducible phases, not cryptography
    reactions: list[int] = []
    with tempfile.TemporaryDirectory() as tmp, Anvil.start() as node:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        d = deploy_reference_system(w3)
        w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        w3.provider.make_request("evm_setIntervalMining", [1])  # type: ignore[arg-type]
        config = devnet_config(node, d)
        config["state_dir"] = f"{tmp}/state"
        config["metrics"] = {"host": "127.0.0.1", "port": free_port()}
        config["schedule"] = {"poll_seconds": poll, "in_flight_seconds": 0.2}
        config["chain"] = {**config["chain"], "confirmations": 1}  # type: ignore[dict-item]
        config["safety"] = {"max_rebalances_per_hour": 10_000}  # 20 events in minutes of 1 s blocks
        path = Path(tmp) / "keeper.toml"
        path.write_text(render_toml(config))
        log = Path(tmp, "keeper.log").open("w")  # noqa: SIM115 - closed in finally
        daemon = subprocess.Popen([sys.executable, "-m", "keeper.cli", "run", "--config", str(path)],
                                  stdout=log, stderr=subprocess.STDOUT)
        vm = contract(w3, "VaultManager", d.vault_manager)
        feed = contract(w3, "PriceFeed", d.feeds["WETH"])
        answer_within = 60 + 2 * poll
        try:
            price = Decimal(3000)

            def quiet() -> None:
                last, since = vm.functions.rebalanceCount().call(), time.monotonic()
                while time.monotonic() - since < max(4, 1.5 * poll):
                    now = vm.functions.rebalanceCount().call()
                    if now != last:
                        last, since = now, time.monotonic()
                    time.sleep(0.2)

            quiet()  # the first ticks fit the seeded books
            for event in range(events):
                time.sleep(rng.uniform(0, poll))
                price = price * (Decimal("1.12") if event % 2 == 0 else Decimal("0.89"))
                before = vm.functions.rebalanceCount().call()
                receipt = send(w3, feed.functions.setAnswer(int(price * 10**8)), d.owner, "price")
                condition_block = int(receipt["blockNumber"])
                deadline = time.monotonic() + answer_within
                while vm.functions.rebalanceCount().call() <= before and time.monotonic() < deadline:
                    time.sleep(0.1)
                logs = vm.events.Rebalanced().get_logs(from_block=condition_block + 1)
                if not logs:
                    print(f"poll {poll} s, event {event}: no rebalance within {answer_within:.0f} s", file=sys.stderr)
                    continue
                reaction = int(logs[0]["blockNumber"]) - condition_block
                reactions.append(reaction)
                print(f"poll {poll} s, event {event}: condition in block {condition_block}, rebalance mined in "
                      f"block {logs[0]['blockNumber']} (+{reaction})", file=sys.stderr)
                quiet()
        finally:
            daemon.terminate()  # by its pid; anvil is stopped by its pid when the `with` block ends
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            log.close()
    return reactions


def p95(values: list[int]) -> int | None:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)] if ordered else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--poll", type=float, default=0.1, help="the keeper's poll interval (default 0.1 s)")
    parser.add_argument("--baseline-poll", type=float, default=60.0,
                        help="the baseline's poll interval (default 60 s, the original keeper's)")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    if args.events < 1 or args.poll <= 0 or args.baseline_poll <= 0:
        parser.error("argument --events must be ≥ 1 and the poll intervals > 0")
    results = [(f"keeper, poll {args.poll:g} s", trial(args.poll, args.events, args.seed)),
               (f"baseline, poll {args.baseline_poll:g} s", trial(args.baseline_poll, args.events, args.seed))]
    print("| daemon | events answered | median (blocks) | p95 (blocks) | max | all |\n|---|---:|---:|---:|---:|---|")
    for label, reactions in results:
        print(f"| {label} | {len(reactions)}/{args.events} | "
              f"{statistics.median(reactions) if reactions else '-'} | {p95(reactions) or '-'} | "
              f"{max(reactions) if reactions else '-'} | {', '.join(map(str, reactions))} |")
    fast, slow = (statistics.median(r) if r else None for _, r in results)
    if fast and slow:
        print(f"\nmedian ratio baseline / keeper: {slow / fast:.1f}×")


if __name__ == "__main__":
    main()
