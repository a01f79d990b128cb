"""`keeper run` killed at every journal state, rebalance cycle after rebalance cycle, audited journal vs chain.

Each cycle: the daemon starts with `KEEPER_FAULT_KILL_AT=<checkpoint>` (keeper.execute.killpoint: SIGKILL right
after that journal write), a delta-drift trigger is made true on chain, the daemon dies at the checkpoint of the
rebalance it started; it is restarted without the variable and must finish that rebalance — exactly one
`Rebalanced` effect for the cycle — and settle (every intent terminal). After all cycles, one journal is
audited against the chain (keeper.faults.audit): zero duplicate executions (VaultManager's rebalanceCount and
its events against the successful intents, each effective once), zero lost intents, zero nonce gaps.

Slow: every checkpoint × KEEPER_DAEMON_CYCLES (default 10) cycles, for `make faults`. Fast: one checkpoint
(`signed`: the transaction exists, the node does not have it), one cycle, in `make test`.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from keeper.faults.audit import TERMINAL, audit, journal_intents
from keeper.faults.manifest import DAEMON_KILL_CHECKPOINTS
from keeper.faults.process import DaemonProcess
from tests.faults.conftest import CHILD_ENV, KEEPER, World, keeper_config, ready, settle

pytestmark = pytest.mark.anvil
KILL_AT = "KEEPER_FAULT_KILL_AT"


def _settled(d: DaemonProcess, world: World, journal: Path) -> int:
    """Quiet chain and mempool, and every journal intent terminal (finality reached); the rebalance count."""
    count = settle(d, world)
    d.wait_until(lambda: all(i[2] in TERMINAL for i in journal_intents(journal, KEEPER)), "every intent terminal",
                 60, between=world.mine_many)
    return max(count, world.rebalances())


def _killed(d: DaemonProcess, world: World, checkpoint: str, timeout: float = 90) -> int:
    """Mine (a burst when finality is the checkpoint) until the daemon dies; its exit code."""
    deadline = time.monotonic() + timeout
    while d.alive():
        if time.monotonic() > deadline:
            raise AssertionError(f"not killed at {checkpoint} within {timeout:.0f}s:\n{d.log_text()[-3000:]}")
        world.mine_many() if checkpoint == "finalized" else world.mine()
        time.sleep(0.3)
    assert d.process is not None
    return int(d.process.returncode)


def run_cycles(checkpoint: str, cycles: int, world: World, daemons: Callable[..., DaemonProcess], tmp_path: Path,  # noqa: PLR0917
               record: Any, scenario: str) -> None:
    state = tmp_path / "state"
    journal = state / "journal.sqlite3"
    first_nonce, start_count = world.keeper_nonce(), world.rebalances()  # the journal starts empty here
    config = keeper_config(world.anvil, world.deployment, state, safety={"max_rebalances_per_hour": 1000})
    plain = daemons(config, name="keeper", env={**CHILD_ENV, KILL_AT: ""})  # empty: not armed
    killable = daemons(config, name="killable", env={**CHILD_ENV, KILL_AT: checkpoint})
    plain.start()
    ready(plain, world)
    fitted = _settled(plain, world, journal)  # the seeded books are fitted first, without a kill
    plain.stop()
    weth = world.prices["WETH"]
    per_cycle: list[int] = []
    for i in range(cycles):
        before = world.rebalances()
        killable.start()
        ready(killable, world)
        moved = weth * Decimal("1.12") if i % 2 == 0 else weth  # up, then back: a drift every cycle
        world.step(60, WETH=moved.quantize(Decimal(1)))
        code = _killed(killable, world, checkpoint)
        assert code == -signal.SIGKILL, f"cycle {i}: exit {code} at {checkpoint}:\n{killable.log_text()[-3000:]}"
        plain.start()  # restarted without the kill point: it must finish what the killed one started
        ready(plain, world)
        after = _settled(plain, world, journal)
        plain.stop()
        per_cycle.append(after - before)
    kills = killable.log_events().count("fault.kill")
    result = audit(journal, world.url, KEEPER, first_nonce, vault_manager=world.deployment.vault_manager)
    total = world.rebalances() - start_count
    log = plain.log_text() + killable.log_text()
    once = sorted(set(result.effects_by_intent.values()))
    observed = (f"{cycles} cycle(s) killed at `{checkpoint}` ({kills} fault.kill lines, every exit -9), restarted "
                f"without it: rebalances per cycle {per_cycle}; rebalanceCount +{total} (the seeded fit "
                f"{fitted - start_count}) for {result.succeeded} successful intents, each effective {once}×; "
                f"audit: {result.summary()}")
    assert kills == cycles, observed
    assert per_cycle == [1] * cycles, observed  # one effect per cycle: none lost, none duplicated
    assert result.ok and total == result.succeeded and once == [1], observed
    assert "Traceback" not in log, observed
    record(scenario, f"SIGKILL of `keeper run` right after the `{checkpoint}` journal write (KEEPER_FAULT_KILL_AT), "
           "a restart without it", f"{cycles} rebalance cycle(s), one journal",
           "zero duplicate executions, zero lost intents, zero nonce gaps (journal vs chain)", observed)


def test_daemon_killed_at_one_checkpoint(
    world: World, daemons: Callable[..., DaemonProcess], tmp_path: Path, record: Any
) -> None:
    run_cycles("signed", 1, world, daemons, tmp_path, record, "crash.daemon_cycles.subset")


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint", DAEMON_KILL_CHECKPOINTS)
def test_daemon_killed_at_checkpoint_every_cycle(
    checkpoint: str, world: World, daemons: Callable[..., DaemonProcess], tmp_path: Path, record: Any
) -> None:
    cycles = int(os.environ.get("KEEPER_DAEMON_CYCLES", "10"))
    run_cycles(checkpoint, cycles, world, daemons, tmp_path, record, f"crash.daemon_cycles.{checkpoint}")
