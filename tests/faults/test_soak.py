"""Soak: many vaults, an hour of ticks (time-compressed: one block per tick, as fast as the keeper keeps up).

RSS growth under 5% after warm-up, no missed tick (every mined block gets its tick), no file-descriptor or
thread growth (/proc/<pid>/status and /proc/<pid>/fd). Sizes: KEEPER_SOAK_VAULTS (default 1000) and either
KEEPER_SOAK_SECONDS (ticks back to back for that long after the warm-up: 3600 = one hour of wall-clock
ticking) or KEEPER_SOAK_TICKS (default 3600 = one hour of 1 s blocks). RSS is sampled at the first tick,
after the warm-up and every tenth of the run; the timeline goes to the test's artifacts.
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
    seconds = float(os.environ.get("KEEPER_SOAK_SECONDS", "0"))
    ticks = int(os.environ.get("KEEPER_SOAK_TICKS", "3600"))
    warmup = 50 if seconds else max(50, ticks // 20)
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
            at_start = daemon.stats()
            started = time.monotonic()
            samples = []
            timeline = [(0.0, 0, at_start)]
            ok_before = 0.0
            missed = 0
            measured_from = started
            i = 0
            while (time.monotonic() - measured_from < seconds) if seconds else i < ticks:
                if i == warmup:
                    samples.append(daemon.stats())
                    ok_before = daemon.value("keeper_ticks_total", result="ok")
                    measured_from = time.monotonic()
                    timeline.append((measured_from - started, i, samples[0]))
                span = seconds or float("inf")
                if i > warmup and seconds and time.monotonic() - timeline[-1][0] - started >= span / 10:
                    timeline.append((time.monotonic() - started, i, daemon.stats()))
                i += 1
                rpc(node.url, "evm_mine")
                target = head()
                deadline = time.monotonic() + 30
                while not caught_up(target):
                    if time.monotonic() > deadline or not daemon.alive():
                        tail = daemon.log_text()[-2000:]
                        raise AssertionError(f"tick {i}: keeper did not reach block {target}\n{tail}")
                    time.sleep(0.01)
            ticks = i
            time.sleep(1)
            end = daemon.stats()
            timeline.append((time.monotonic() - started, ticks, end))
            text = daemon.metrics()
            ok = metric(text, "keeper_ticks_total", result="ok") - ok_before
            errors = metric(text, "keeper_ticks_total", result="error") + metric(
                text, "keeper_ticks_total", result="read_error")
            missed = (ticks - warmup) - int(ok)
            elapsed = time.monotonic() - started
            after_warmup = time.monotonic() - measured_from
            error_lines = [ln for ln in daemon.log_text().splitlines() if '"level": "error"' in ln][:3]
        finally:
            daemon.stop()
            artifacts[0].append((f"{daemon.name} log", daemon.log_text()))
            artifacts[0].append((f"{daemon.name} RSS timeline", "\n".join(
                f"t={t:.0f}s tick={n} rss_kb={st.rss_kb} fds={st.fds} threads={st.threads}" for t, n, st in timeline)))
            artifacts[0].extend((f"{daemon.name} /metrics scrape {i}", t) for i, t in enumerate(daemon.scrapes))
    first = samples[0]
    growth = (end.rss_kb - first.rss_kb) / first.rss_kb
    observed = (f"{count} vaults, {ticks} ticks in {elapsed:.0f}s wall ({ticks / elapsed:.1f}/s), "
                f"{after_warmup:.0f}s after a {warmup}-tick warm-up; RSS at the first tick {at_start.rss_kb} kB, after "
                f"warm-up {first.rss_kb} kB, at the end {end.rss_kb} kB ({growth:+.1%} after warm-up); "
                f"fds {first.fds}→{end.fds}, threads {first.threads}→{end.threads}; missed ticks {max(missed, 0)}, "
                f"tick errors {errors:.0f}"
                + (f" ({'; '.join(e[:160] for e in error_lines)})" if error_lines else ""))
    passed = (growth < 0.05 and missed <= 0 and errors == 0 and end.fds <= first.fds
              and end.threads <= first.threads)
    span = (f"{after_warmup / 3600:.2f} h of wall-clock ticking" if seconds
            else f"1 s blocks: {ticks / 3600:.2f} h of chain time")
    record("soak.vaults_hour_of_ticks", f"{count} vaults; one block per tick, back to back, {ticks} ticks ({span})",
           "continuous", "RSS growth < 5%, no missed tick, no fd/thread growth", observed,
           "pass" if passed else "finding")
    assert passed, observed
