"""Soak: many vaults, an hour of ticks (time-compressed: one block per tick, as fast as the keeper keeps up).

RSS growth under 5% after warm-up, no missed tick (every mined block gets its tick), no file-descriptor or
thread growth (/proc/<pid>/status and /proc/<pid>/fd). Sizes: KEEPER_SOAK_VAULTS (default 1000) and
KEEPER_SOAK_TICKS (default 3600 = one hour of 1 s blocks).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from keeper.devnet.anvil import Anvil, rpc
from keeper.devnet.deploy import contract, deploy_reference_system
from keeper.faults.process import DaemonProcess, metric
from tests.faults.conftest import CHILD_ENV, keeper_config

pytestmark = [pytest.mark.anvil, pytest.mark.slow]


def test_soak_many_vaults_an_hour_of_ticks(tmp_path: Path, record: Any, artifacts: Any) -> None:
    vaults = int(os.environ.get("KEEPER_SOAK_VAULTS", "1000"))
    ticks = int(os.environ.get("KEEPER_SOAK_TICKS", "3600"))
    warmup = max(50, ticks // 20)
    with Anvil.start(extra_args=("--gas-limit", "300000000")) as node:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        d = deploy_reference_system(w3)
        vm = contract(w3, "VaultManager", d.vault_manager)
        rpc(node.url, "evm_setAutomine", [False])
        for i in range(vaults - len(d.vaults)):
            vm.functions.addVault(i % 3).transact({"from": d.owner, "gas": 400_000})
            if i % 200 == 199:
                rpc(node.url, "evm_mine")
        rpc(node.url, "evm_mine")
        rpc(node.url, "evm_setAutomine", [True])
        count = int(vm.functions.vaultCount().call())
        config = keeper_config(node, d, tmp_path / "state", schedule={"poll_seconds": 0.05, "in_flight_seconds": 0.5,
                                                                      "grace_seconds": 20})
        daemon = DaemonProcess(config, tmp_path / "daemon", name="soak", env=CHILD_ENV)
        try:
            daemon.start()

            def head() -> int:
                return int(str(rpc(node.url, "eth_blockNumber")), 16)

            def caught_up(block: int) -> bool:
                return daemon.value("keeper_head_block") >= block

            daemon.wait_until(lambda: caught_up(head()), "first tick", 120)
            started = time.monotonic()
            samples = []
            ok_before = 0.0
            missed = 0
            for i in range(ticks):
                if i == warmup:
                    samples.append(daemon.stats())
                    ok_before = daemon.value("keeper_ticks_total", result="ok")
                rpc(node.url, "evm_mine")
                target = head()
                deadline = time.monotonic() + 30
                while not caught_up(target):
                    if time.monotonic() > deadline or not daemon.alive():
                        tail = daemon.log_text()[-2000:]
                        raise AssertionError(f"tick {i}: keeper did not reach block {target}\n{tail}")
                    time.sleep(0.01)
            time.sleep(1)
            end = daemon.stats()
            text = daemon.metrics()
            ok = metric(text, "keeper_ticks_total", result="ok") - ok_before
            errors = metric(text, "keeper_ticks_total", result="error") + metric(
                text, "keeper_ticks_total", result="read_error")
            missed = (ticks - warmup) - int(ok)
            elapsed = time.monotonic() - started
        finally:
            daemon.stop()
            artifacts[0].append((f"{daemon.name} log", daemon.log_text()))
            artifacts[0].extend((f"{daemon.name} /metrics scrape {i}", t) for i, t in enumerate(daemon.scrapes))
    first = samples[0]
    growth = (end.rss_kb - first.rss_kb) / first.rss_kb
    observed = (f"{count} vaults, {ticks} ticks in {elapsed:.0f}s wall ({ticks / elapsed:.1f}/s); after {warmup}-tick "
                f"warm-up: RSS {first.rss_kb}→{end.rss_kb} kB ({growth:+.1%}), fds {first.fds}→{end.fds}, threads "
                f"{first.threads}→{end.threads}; missed ticks {missed}, tick errors {errors:.0f}")
    passed = growth < 0.05 and missed <= 0 and end.fds <= first.fds and end.threads <= first.threads
    record("soak.vaults_hour_of_ticks", f"{count} vaults; one block per tick, {ticks} ticks (1 s blocks: "
           f"{ticks / 3600:.2f} h of chain time)", "continuous", "RSS growth < 5%, no missed tick, no fd/thread growth",
           observed, "pass" if passed else "finding")
    assert passed, observed
