"""Benchmark: reaction time in blocks, from a trigger condition becoming true on chain to the
rebalance that answers it being mined. anvil with 1-second blocks, the real `keeper run` daemon.

Each event moves the ETH price by ±12% (alternating): every vault's hedge drifts past 5% in the block
that includes the price update. Measured: (block of the `Rebalanced` event) − (block of the price
update). 0 would mean the same block (impossible: the keeper sees the block after it is mined);
1 means the keeper's transaction was included in the very next block.

    .venv/bin/python -m bench.reaction [--events 20]
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20)
    args = parser.parse_args()
    reactions: list[int] = []
    with tempfile.TemporaryDirectory() as tmp, Anvil.start() as node:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        d = deploy_reference_system(w3)
        w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        w3.provider.make_request("evm_setIntervalMining", [1])  # type: ignore[arg-type]
        config = devnet_config(node, d)
        config["state_dir"] = f"{tmp}/state"
        config["metrics"] = {"host": "127.0.0.1", "port": free_port()}
        config["schedule"] = {"poll_seconds": 0.1, "in_flight_seconds": 0.2}
        config["chain"] = {**config["chain"], "confirmations": 1}  # type: ignore[dict-item]
        config["safety"] = {"max_rebalances_per_hour": 10_000}  # 20 events in minutes of 1 s blocks
        path = Path(tmp) / "keeper.toml"
        path.write_text(render_toml(config))
        log = Path(tmp, "keeper.log").open("w")  # noqa: SIM115 - closed in finally
        daemon = subprocess.Popen([sys.executable, "-m", "keeper.cli", "run", "--config", str(path)],
                                  stdout=log, stderr=subprocess.STDOUT)
        vm = contract(w3, "VaultManager", d.vault_manager)
        feed = contract(w3, "PriceFeed", d.feeds["WETH"])
        try:
            price = Decimal(3000)

            def quiet() -> None:
                last, since = vm.functions.rebalanceCount().call(), time.monotonic()
                while time.monotonic() - since < 4:
                    now = vm.functions.rebalanceCount().call()
                    if now != last:
                        last, since = now, time.monotonic()
                    time.sleep(0.2)

            quiet()  # the first ticks fit the seeded books
            for event in range(args.events):
                price = price * (Decimal("1.12") if event % 2 == 0 else Decimal("0.89"))
                before = vm.functions.rebalanceCount().call()
                receipt = send(w3, feed.functions.setAnswer(int(price * 10**8)), d.owner, "price")
                condition_block = int(receipt["blockNumber"])
                deadline = time.monotonic() + 60
                while vm.functions.rebalanceCount().call() <= before and time.monotonic() < deadline:
                    time.sleep(0.1)
                logs = vm.events.Rebalanced().get_logs(from_block=condition_block + 1)
                if not logs:
                    print(f"event {event}: no rebalance within 60 s", file=sys.stderr)
                    continue
                reaction = int(logs[0]["blockNumber"]) - condition_block
                reactions.append(reaction)
                print(f"event {event}: condition in block {condition_block}, rebalance mined in "
                      f"block {logs[0]['blockNumber']} (+{reaction})", file=sys.stderr)
                quiet()
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
            log.close()
    ordered = sorted(reactions)
    p95 = ordered[max(0, -(-95 * len(ordered) // 100) - 1)] if ordered else None
    print(f"| events | median (blocks) | p95 (blocks) | max | all |\n|---:|---:|---:|---:|---|\n"
          f"| {len(reactions)} | {statistics.median(reactions) if reactions else '-'} | {p95} | "
          f"{max(reactions) if reactions else '-'} | {', '.join(map(str, reactions))} |")


if __name__ == "__main__":
    main()
