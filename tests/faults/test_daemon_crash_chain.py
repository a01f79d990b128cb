"""The daemon under crashes, pauses and chain events, audited journal-vs-chain afterwards.

Kill points (daemon level; the pipeline-level drill per journal checkpoint is tests/execute/test_kill_drill.py):
SIGKILL while a rebalance waits in the mempool, after it is mined but before it is confirmed, and with the
mempool evicted while the keeper is down. SIGSTOP/SIGCONT with a rebalance in flight. Reorgs of depth 1-5
after the keeper journaled the inclusion (it must count the reorg and get the intent included once). A
base-fee spike above the configured cap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from keeper.devnet.anvil import rpc
from keeper.faults.audit import Audit, audit, journal_intents
from keeper.faults.chainops import base_fee_spike, drop_mempool, reorg
from keeper.faults.process import DaemonProcess, metric
from tests.faults.conftest import KEEPER, World, keeper_config, ready, rebalanced_after, settle

pytestmark = pytest.mark.anvil
GWEI = 10**9


def _audit(world: World, state: Path, first_nonce: int) -> Audit:
    journal = state / "journal.sqlite3"
    return audit(journal, world.url, KEEPER, first_nonce, vault_manager=world.deployment.vault_manager)


def _in_mempool(world: World) -> bool:
    return world.keeper_nonce("pending") > world.keeper_nonce("latest")


def _start(world: World, daemons: Callable[..., DaemonProcess], state: Path, **sections: Any) -> DaemonProcess:
    d = daemons(keeper_config(world.anvil, world.deployment, state, **sections)).start()
    ready(d, world)
    return d


def run_kill(point: str, world: World, daemons: Callable[..., DaemonProcess], tmp_path: Path, record: Any) -> None:
    state = tmp_path / "state"
    first_nonce, start_count = world.keeper_nonce(), world.rebalances()  # the journal starts empty here
    d = _start(world, daemons, state)
    before = settle(d, world)
    world.drift_unmined()  # automine off from here
    d.wait_until(lambda: _in_mempool(world), "the rebalance in the mempool", 30)
    if point == "mined_unconfirmed":
        world.mine()
        d.wait_until(lambda: world.rebalances() > before, "inclusion", 10)
    code = d.kill()
    assert code == -9
    if point == "evicted_while_down":
        drop_mempool(world.url)
        assert not _in_mempool(world)
    world.automine(True)
    d.start()
    ready(d, world)
    settle(d, world)
    result = _audit(world, state, first_nonce)
    executed = world.rebalances() - before
    log = d.log_text()
    observed = f"{executed} rebalance(s) for the drift; audit: {result.summary()}"
    assert result.ok, observed
    assert executed == 1 and world.rebalances() - start_count == result.succeeded, observed
    assert "Traceback" not in log, observed
    record(
        f"crash.daemon.{point}",
        {
            "in_mempool": "SIGKILL of `keeper run` while its rebalance waits in the mempool",
            "mined_unconfirmed": "SIGKILL after inclusion, before the confirmation was journaled",
            "evicted_while_down": "SIGKILL with the tx in the mempool, then anvil_dropAllTransactions",
        }[point],
        "once per run, then restart",
        "zero duplicate executions, zero lost intents, zero nonce gaps (journal vs chain)",
        observed,
    )


def test_kill_daemon_mid_rebalance_then_restart(
    world: World, daemons: Callable[..., DaemonProcess], tmp_path: Path, record: Any
) -> None:
    run_kill("in_mempool", world, daemons, tmp_path, record)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["mined_unconfirmed", "evicted_while_down"])
def test_kill_daemon_at_other_points(
    point: str, world: World, daemons: Callable[..., DaemonProcess], tmp_path: Path, record: Any
) -> None:
    run_kill(point, world, daemons, tmp_path, record)


@pytest.mark.slow
def test_sigstop_with_a_rebalance_in_flight(
    world: World, daemons: Callable[..., DaemonProcess], tmp_path: Path, record: Any
) -> None:
    state = tmp_path / "state"
    first_nonce, start_count = world.keeper_nonce(), world.rebalances()  # the journal starts empty here
    d = _start(world, daemons, state)
    before = settle(d, world)
    world.drift_unmined()
    d.wait_until(lambda: _in_mempool(world), "the rebalance in the mempool", 30)
    d.pause()
    world.automine(True)
    for _ in range(20):  # 20 blocks pass while the keeper is frozen (its tx is mined meanwhile)
        world.mine()
    time.sleep(2)
    d.resume()
    settle(d, world)
    result = _audit(world, state, first_nonce)
    executed = world.rebalances() - before
    observed = f"paused ~2s across 20 blocks; {executed} rebalance(s) for the drift; audit: {result.summary()}"
    assert result.ok and executed == 1 and world.rebalances() - start_count == result.succeeded, observed
    record("pause.sigstop_in_flight", "SIGSTOP of `keeper run` with a rebalance in the mempool, SIGCONT later",
           "once, 20 blocks while stopped", "exactly one effect, journal consistent after SIGCONT", observed)


@pytest.mark.slow
@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_reorg_after_inclusion(
    depth: int, world: World, daemons: Callable[..., DaemonProcess], tmp_path: Path, record: Any
) -> None:
    """The rebalance is mined, the keeper journals the inclusion, then `depth` blocks (the one holding it among
    them) are replaced by empty ones: the keeper must notice (keeper_execution_reorgs_total, the journal's
    `reorged` step back to broadcast) and get that same intent included again, exactly once."""
    state = tmp_path / "state"
    journal = state / "journal.sqlite3"
    first_nonce, start_count = world.keeper_nonce(), world.rebalances()  # the journal starts empty here
    d = _start(world, daemons, state)
    before = settle(d, world)
    world.drift_unmined()
    d.wait_until(lambda: _in_mempool(world), "the rebalance in the mempool", 30)
    world.mine()  # included
    mined_at = int(str(rpc(world.url, "eth_blockNumber")), 16)
    assert world.rebalances() == before + 1
    for _ in range(depth - 1):
        world.mine()

    def included_intent() -> int | None:
        calls = [i for i in journal_intents(journal, KEEPER) if i[1] == "call" and i[3]]
        return calls[-1][0] if calls and calls[-1][2] in ("mined", "confirmed") else None

    d.wait_until(lambda: included_intent() is not None, "the keeper to journal the inclusion", 30)
    intent_id = included_intent()
    assert intent_id is not None
    reorgs_before = d.value("keeper_execution_reorgs_total")
    reorg(world.url, depth)  # the block with the rebalance is replaced by an empty one
    head = int(str(rpc(world.url, "eth_blockNumber")), 16)
    assert head - depth < mined_at and world.rebalances() == before, "the reorg did not remove the rebalance"
    world.automine(True)
    seen = d.wait_until(lambda: d.value("keeper_execution_reorgs_total") > reorgs_before, "the keeper to see the reorg",
                        30, between=world.mine)
    settle(d, world)
    result = _audit(world, state, first_nonce)
    executed = world.rebalances() - before
    reorgs = d.value("keeper_execution_reorgs_total") - reorgs_before
    once = result.effects_by_intent.get(intent_id, 0)
    observed = (f"depth {depth}: intent {intent_id} journaled as included, reorged away; keeper_execution_reorgs_total "
                f"+{reorgs:.0f} ({seen:.1f}s after the reorg); {executed} rebalance(s) on the final chain, that intent "
                f"effective {once}×; {result.summary()}")
    assert reorgs >= 1 and once == 1, observed
    assert result.ok and executed == 1 and world.rebalances() - start_count == result.succeeded, observed
    record(f"reorg.depth_{depth}", f"anvil_reorg of depth {depth} after the rebalance was included and journaled",
           "once", "the keeper sees the reorg; every intent effective exactly once", observed)


@pytest.mark.slow
def test_fee_spike_above_cap_waits_then_includes(
    world: World, daemons: Callable[..., DaemonProcess], tmp_path: Path, record: Any
) -> None:
    cap = 50 * GWEI
    state = tmp_path / "state"
    first_nonce, start_count = world.keeper_nonce(), world.rebalances()
    d = _start(world, daemons, state, gas={"max_fee_per_gas_wei": cap})
    before = settle(d, world)
    settled_nonce = world.keeper_nonce()
    base_fee_spike(world.url, 200 * GWEI)
    world.drift()
    spiked_blocks = 0
    deadline = time.monotonic() + 8
    waiting_seen = 0.0
    while time.monotonic() < deadline:
        base_fee_spike(world.url, 200 * GWEI)
        world.mine()
        spiked_blocks += 1
        assert world.keeper_nonce("pending") == settled_nonce, "sent during the spike"
        waiting_seen = max(waiting_seen, d.value("keeper_fee_cap_waiting"))
        time.sleep(0.3)
    text = d.metrics()
    waits = metric(text, "keeper_fee_cap_waits_total") + metric(text, "keeper_execution_fee_cap_waits_total")
    base_fee_spike(world.url, 1 * GWEI)  # fees fall
    waited = rebalanced_after(d, world, before, "inclusion after fees fell", 60)
    settle(d, world)
    result = _audit(world, state, first_nonce)
    over = []
    for tx_hash in result.mined_hashes:
        tx = rpc(world.url, "eth_getTransactionByHash", [tx_hash])
        assert isinstance(tx, dict)
        fee = int(str(tx.get("maxFeePerGas") or tx.get("gasPrice")), 16)
        if fee > cap:
            over.append(fee)
    observed = (
        f"{spiked_blocks} blocks at 200 gwei: 0 tx sent, keeper_fee_cap_waiting max {waiting_seen:.0f}, "
        f"fee-cap waits {waits:.0f}; included {waited:.1f}s after fees fell; txs above cap {len(over)}; "
        f"{result.summary()}"
    )
    assert not over and waits >= 1 and waiting_seen == 1 and result.ok, observed
    assert world.rebalances() - start_count == result.succeeded, observed
    record("fee.spike_above_cap", "base fee 200 gwei every block (anvil_setNextBlockBaseFeePerGas), cap 50 gwei",
           f"{spiked_blocks} consecutive blocks during a due rebalance",
           "nothing above the cap; wait visible in metrics; inclusion after fees fall", observed)
