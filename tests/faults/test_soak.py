"""Soak: 1000 vaults, an hour of ticks (time-compressed: one block per tick, as fast as the keeper keeps up), with
rebalances happening all along.

The reference system's funded vaults (books, hedges: the ones the demo trades) plus empty ones up to
KEEPER_SOAK_VAULTS (default 1000). Every KEEPER_SOAK_REBALANCE_EVERY ticks (default 150) WETH moves ±12% (every
feed refreshed), so the funded vaults drift and the keeper plans, simulates, signs, sends and journals a rebalance
during the soak: intents and journal writes grow with the run, not only the read path. Mining stays manual (one
block per tick, the keeper's transaction in the next block), so every block must get its tick.

Must hold: RSS growth under 5% after the warm-up, no missed tick, no tick error, no file-descriptor or thread
growth (/proc/<pid>/status and /proc/<pid>/fd), and every price move answered by a rebalance. RSS growth is
reported from the first tick too: the warm-up (WARMUP ticks, the first rebalance cycle among them) holds the
one-time allocations — lazy imports, web3/ABI caches, the first snapshot of every vault, the signing and
journal paths' first use, the allocator's arenas reaching their working size — while growth after it is what a
long run accumulates; the second half's growth is reported as the plateau check. Sizes: KEEPER_SOAK_SECONDS
(ticks back to back for that long after the warm-up: 3600 = one hour of wall-clock ticking) or
KEEPER_SOAK_TICKS (default 3600). The RSS timeline goes to `.keeper/reliability/soak_timeline.txt`.
"""

from __future__ import annotations

import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from keeper.devnet.anvil import Anvil, rpc
from keeper.devnet.deploy import FEED_DECIMALS, contract, deploy_reference_system
from keeper.faults.audit import journal_intents
from keeper.faults.process import DaemonProcess, ProcStats, metric
from keeper.faults.results import results_dir
from tests.faults.conftest import CHILD_ENV, KEEPER, keeper_config
from tests.faults.plugin import SCAN

pytestmark = [pytest.mark.anvil, pytest.mark.slow]
WARMUP = 50
FIRST_MOVE = 10  # the first price move lands inside the warm-up: its rebalance is part of the baseline
PRICES = {"USDC": Decimal(1), "WETH": Decimal(3000), "WBTC": Decimal(60000)}


def _growth(start: ProcStats, end: ProcStats) -> float:
    return (end.rss_kb - start.rss_kb) / start.rss_kb


def _steady(daemon: DaemonProcess, samples: int = 5) -> ProcStats:
    """RSS now; fds and threads at their fewest over a second (the metrics server's thread and socket for the
    scrape just answered may not be gone yet: a transient, not growth)."""
    seen = []
    for _ in range(samples):
        seen.append(daemon.stats())
        time.sleep(0.2)
    return ProcStats(seen[-1].rss_kb, min(s.fds for s in seen), min(s.threads for s in seen))


def test_soak_many_vaults_an_hour_of_ticks(tmp_path: Path, record: Any) -> None:
    vaults = int(os.environ.get("KEEPER_SOAK_VAULTS", "1000"))
    seconds = float(os.environ.get("KEEPER_SOAK_SECONDS", "0"))
    ticks = int(os.environ.get("KEEPER_SOAK_TICKS", "3600"))
    every = int(os.environ.get("KEEPER_SOAK_REBALANCE_EVERY", "150"))
    with Anvil.start(extra_args=("--gas-limit", "300000000")) as node:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        d = deploy_reference_system(w3)
        funded = len(d.vaults)
        vm = contract(w3, "VaultManager", d.vault_manager)
        feeds = {symbol: contract(w3, "PriceFeed", d.feeds[symbol]) for symbol in PRICES}
        rpc(node.url, "evm_setAutomine", [False])
        for i in range(vaults - funded):
            vm.functions.addVault(i % 3).transact({"from": d.owner, "gas": 400_000})
            if i % 200 == 199:
                rpc(node.url, "evm_mine")
        rpc(node.url, "evm_mine")
        count = int(vm.functions.vaultCount().call())

        def move(up: bool) -> None:
            """Every feed refreshed (mined with the next tick's block); WETH +12% or back."""
            prices = {**PRICES, "WETH": PRICES["WETH"] * Decimal("1.12") if up else PRICES["WETH"]}
            for symbol, usd in prices.items():
                answer = int((usd * 10**FEED_DECIMALS).to_integral_value())
                feeds[symbol].functions.setAnswer(answer).transact({"from": d.owner, "gas": 200_000})

        def rebalances() -> int:
            return int(vm.functions.rebalanceCount().call())

        move(False)  # fresh feeds at the start (mining stays manual from here: one block per tick)
        rpc(node.url, "evm_mine")
        config = keeper_config(node, d, tmp_path / "state", schedule={"poll_seconds": 0.05, "in_flight_seconds": 0.5,
                                                                      "grace_seconds": 20},
                               safety={"max_rebalances_per_hour": 100_000})  # chain time runs at ~2 blocks/s here
        daemon = DaemonProcess(config, tmp_path / "daemon", name="soak", env=CHILD_ENV, scan=SCAN)
        try:
            daemon.start()

            def head() -> int:
                return int(str(rpc(node.url, "eth_blockNumber")), 16)

            def caught_up(block: int) -> bool:
                return daemon.value("keeper_head_block") >= block

            daemon.wait_until(lambda: caught_up(head()), "first tick", 120)
            at_start = daemon.stats()
            started = time.monotonic()
            timeline = [(0.0, 0, at_start)]
            warm = at_start
            ok_before = 0.0
            measured_from = started
            rebalances_at_start = rebalances()
            moves = 0
            i = 0
            while i <= WARMUP or ((time.monotonic() - measured_from < seconds) if seconds else i < ticks):
                if i == WARMUP:
                    warm = _steady(daemon)
                    ok_before = daemon.value("keeper_ticks_total", result="ok")
                    measured_from = time.monotonic()
                    timeline.append((measured_from - started, i, warm))
                tenth = (time.monotonic() - started - timeline[-1][0] >= seconds / 10) if seconds \
                    else i % max(ticks // 10, 1) == 0
                if i > WARMUP and tenth:
                    timeline.append((time.monotonic() - started, i, daemon.stats()))
                if i % every == FIRST_MOVE:
                    move(up=moves % 2 == 0)
                    moves += 1
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
            end = _steady(daemon)
            timeline.append((time.monotonic() - started, ticks, end))
            text = daemon.metrics()
            ok = metric(text, "keeper_ticks_total", result="ok") - ok_before
            lost = daemon.log_text().count("snapshot read failed; retrying next block")
            errors = metric(text, "keeper_ticks_total", result="error") + metric(
                text, "keeper_ticks_total", result="read_error") + lost
            missed = (ticks - WARMUP) - int(ok)
            for _ in range(5):  # the last move's rebalance, if it is still in the mempool
                rpc(node.url, "evm_mine")
                time.sleep(0.3)
            answered = rebalances() - rebalances_at_start
            intents = journal_intents(tmp_path / "state" / "journal.sqlite3", KEEPER)
            elapsed = time.monotonic() - started
            after_warmup = time.monotonic() - measured_from
            error_lines = [ln for ln in daemon.log_text().splitlines() if '"level": "error"' in ln][:3]
        finally:
            daemon.stop()
    half = min(timeline, key=lambda t: abs(t[1] - (WARMUP + ticks) / 2))[2]
    results_dir().mkdir(parents=True, exist_ok=True)
    (results_dir() / "soak_timeline.txt").write_text("".join(
        f"t={t:.0f}s tick={n} rss_kb={st.rss_kb} fds={st.fds} threads={st.threads}\n" for t, n, st in timeline))
    growth, from_first, second_half = _growth(warm, end), _growth(at_start, end), _growth(half, end)
    observed = (f"{count} vaults ({funded} funded), {ticks} ticks in {elapsed:.0f}s wall ({ticks / elapsed:.1f}/s), "
                f"{after_warmup:.0f}s after a {WARMUP}-tick warm-up; {moves} price moves → {answered} rebalances, "
                f"{len(intents)} journal intents; RSS at the first tick {at_start.rss_kb} kB, after warm-up "
                f"{warm.rss_kb} kB, at the end {end.rss_kb} kB: {growth:+.1%} after warm-up, {from_first:+.1%} from "
                f"the first tick, {second_half:+.1%} over the second half (the warm-up holds one-time allocations: "
                f"imports, ABI caches, the first snapshot of every vault, the first rebalance's signing and journal "
                f"paths); fds {warm.fds}→{end.fds}, threads {warm.threads}→{end.threads}; missed ticks "
                f"{max(missed, 0)}, tick errors {errors:.0f}"
                + (f" ({'; '.join(e[:160] for e in error_lines)})" if error_lines else ""))
    span_text = (f"{after_warmup / 3600:.2f} h of wall-clock ticking" if seconds
                 else f"1 s blocks: {ticks / 3600:.2f} h of chain time")
    record("soak.vaults_hour_of_ticks", f"{count} vaults ({funded} funded); one block per tick, back to back, "
           f"{ticks} ticks ({span_text}); WETH ±12% every {every} ticks", "continuous",
           "RSS growth < 5% after warm-up, no missed tick, no fd/thread growth, every price move rebalanced",
           observed)
    assert growth < 0.05 and missed <= 0 and errors == 0, observed
    assert end.fds <= warm.fds and end.threads <= warm.threads, observed
    assert moves >= 2 and answered >= moves and len(intents) >= moves, observed
