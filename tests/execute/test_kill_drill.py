"""kill -9 at every journal checkpoint, restart: exactly one effect on chain, no nonce gap."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from keeper.devnet.anvil import DEV_ACCOUNTS, DEV_KEYS, Anvil
from tests.execute.conftest import balance, fresh_address, nonce

pytestmark = pytest.mark.anvil

CHECKPOINTS = ["planned", "simulated", "nonce_reserved", "signed", "sent", "broadcast", "mined", "confirmed"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pycache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Children cache bytecode outside the repo (the environment disables .pyc writing; imports dominate)."""
    return str(tmp_path_factory.mktemp("pycache"))


def run_drill(env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "keeper.execute.drill"], env=env, cwd=REPO, capture_output=True, timeout=60
    )


@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
def test_kill_at_checkpoint_then_restart_takes_effect_exactly_once(
    anvil: Anvil, tmp_path: Path, checkpoint: str, pycache: str, record: Any
) -> None:
    """KEEPER_DRILL_CYCLES intents (default 1; `make faults` runs 10), each killed at the checkpoint and
    finished by a restart, all in one journal: every intent takes effect once, no nonce gap, nothing lost."""
    cycles = int(os.environ.get("KEEPER_DRILL_CYCLES", "1"))
    journal = tmp_path / "journal.sqlite3"
    base = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        "PYTHONPYCACHEPREFIX": pycache,
        "KEEPER_DRILL_RPC": anvil.url,
        "KEEPER_DRILL_JOURNAL": str(journal),
        "KEEPER_DRILL_KEY": DEV_KEYS[0],
        "KEEPER_DRILL_VALUE": "777",
    }
    first_nonce = nonce(anvil, DEV_ACCOUNTS[0])
    recipients = []
    for _ in range(cycles):
        to = fresh_address()
        recipients.append(to)
        env = {**base, "KEEPER_DRILL_TO": to}
        killed = run_drill({**env, "KEEPER_DRILL_KILL_AT": checkpoint})
        assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
        restarted = run_drill(env)
        assert restarted.returncode == 0, restarted.stdout.decode()[-3000:] + restarted.stderr.decode()[-2000:]
    # audit the chain against the journal
    effects = [balance(anvil, to) for to in recipients]
    with sqlite3.connect(journal) as conn:
        nonces = sorted(r[0] for r in conn.execute("SELECT nonce FROM intents WHERE nonce IS NOT NULL"))
        states = [r[0] for r in conn.execute("SELECT state FROM intents")]
    chain_nonce = nonce(anvil, DEV_ACCOUNTS[0])
    pending = nonce(anvil, DEV_ACCOUNTS[0], "pending")
    observed = (f"{cycles} cycle(s): effects on chain {sum(e == 777 for e in effects)}/{cycles} exactly once "
                f"(duplicates {sum(e > 777 for e in effects)}, lost {sum(e == 0 for e in effects)}); journal nonces "
                f"{nonces[0] if nonces else '-'}..{nonces[-1] if nonces else '-'} "
                f"vs chain {first_nonce}..{chain_nonce - 1} "
                f"(gaps {len(set(range(first_nonce, chain_nonce)) - set(nonces))}); states {sorted(set(states))}")
    ok = (effects == [777] * cycles and chain_nonce == pending and nonces == list(range(first_nonce, chain_nonce))
          and states == ["finalized"] * cycles)
    record(f"crash.pipeline.{checkpoint}", f"SIGKILL of the pipeline process right after the `{checkpoint}` journal "
           "write, then a restart", f"{cycles} intent cycle(s), one journal",
           "zero duplicate executions, zero lost intents, zero nonce gaps (journal vs chain)", observed,
           "pass" if ok else "finding")
    assert effects == [777] * cycles, observed  # exactly one effect each
    assert chain_nonce == pending, observed  # nothing left pending
    assert nonces == list(range(first_nonce, chain_nonce)), observed  # no gap, every used nonce is journaled
    assert states == ["finalized"] * cycles, observed
