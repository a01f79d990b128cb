"""kill -9 at every journal checkpoint, restart: exactly one effect on chain, no nonce gap."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

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
    anvil: Anvil, tmp_path: Path, checkpoint: str, pycache: str
) -> None:
    journal = tmp_path / "journal.sqlite3"
    to = fresh_address()
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        "PYTHONPYCACHEPREFIX": pycache,
        "KEEPER_DRILL_RPC": anvil.url,
        "KEEPER_DRILL_JOURNAL": str(journal),
        "KEEPER_DRILL_KEY": DEV_KEYS[0],
        "KEEPER_DRILL_TO": to,
        "KEEPER_DRILL_VALUE": "777",
    }
    killed = run_drill({**env, "KEEPER_DRILL_KILL_AT": checkpoint})
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    restarted = run_drill(env)
    assert restarted.returncode == 0, restarted.stdout.decode()[-3000:] + restarted.stderr.decode()[-2000:]
    # audit the chain against the journal
    assert balance(anvil, to) == 777  # exactly one effect
    with sqlite3.connect(journal) as conn:
        nonces = sorted(r[0] for r in conn.execute("SELECT nonce FROM intents WHERE nonce IS NOT NULL"))
        states = [r[0] for r in conn.execute("SELECT state FROM intents")]
    chain_nonce = nonce(anvil, DEV_ACCOUNTS[0])
    assert chain_nonce == nonce(anvil, DEV_ACCOUNTS[0], "pending")  # nothing left pending
    assert nonces == list(range(chain_nonce))  # no gap, every used nonce is journaled
    assert states == ["finalized"]
