"""kill -9 at every journal checkpoint, restart: exactly one effect on chain, no nonce gap — on SQLite and
PostgreSQL (a fresh schema per test; skipped with a message when KEEPER_TEST_DATABASE_URL is unset).

The checkpoints after a replacement, a cancel and a reorg need a disturbed chain: the drill's scenarios spike
the base fee with mining paused (the original is stuck: replaced, or cancelled at its deadline) or reorganise
the block holding the mined intent away.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from keeper.devnet.anvil import DEV_ACCOUNTS, DEV_KEYS, Anvil
from keeper.store import open_store
from tests.execute.conftest import balance, fresh_address, nonce
from tests.store.conftest import PG_SKIP, drop_schema, pg_url

pytestmark = pytest.mark.anvil

PLAIN = ["planned", "simulated", "nonce_reserved", "signed", "sent", "broadcast", "mined", "confirmed"]
SCENARIO = {"replacement_signed": "replace", "cancel_signed": "cancel", "reorged": "reorg"}
# PostgreSQL in `make test`: the checkpoints where the journal write and the chain disagree the most; the
# rest of the PostgreSQL matrix is `slow` (`make faults` runs it)
PG_FAST = {"signed", "sent", "replacement_signed", "cancel_signed", "reorged"}
# like tests/faults: skipped unless a `-m` expression is given (`make faults` passes "slow or not slow")
SLOW = [pytest.mark.slow, pytest.mark.skipif("not config.getoption('markexpr')", reason="slow: `make faults` runs it")]
REPO = Path(__file__).resolve().parents[2]
VALUE = 777


def _cases() -> Iterator[Any]:
    for backend in ("sqlite", "postgres"):
        for checkpoint in [*PLAIN, *SCENARIO]:
            slow = backend == "postgres" and checkpoint not in PG_FAST
            yield pytest.param(
                backend, checkpoint, id=f"{checkpoint}-{backend}", marks=SLOW if slow else []
            )


@dataclass
class Journal:
    backend: str
    url: str
    schema: str | None


@pytest.fixture
def drill_journal(backend: str, tmp_path: Path) -> Iterator[Journal]:
    """The drill's journal on `backend`: a SQLite file, or a fresh PostgreSQL schema dropped afterwards."""
    if backend == "sqlite":
        yield Journal(backend, str(tmp_path / "journal.sqlite3"), None)
        return
    url = pg_url()
    if url is None:
        pytest.skip(PG_SKIP)
    schema = f"keeper_drill_{secrets.token_hex(6)}"
    try:
        yield Journal(backend, url, schema)
    finally:
        drop_schema(url, schema)


@pytest.fixture(scope="module")
def pycache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Children cache bytecode outside the repo (the environment disables .pyc writing; imports dominate)."""
    return str(tmp_path_factory.mktemp("pycache"))


def run_drill(env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "keeper.execute.drill"], env=env, cwd=REPO, capture_output=True, timeout=120
    )


def tail(done: subprocess.CompletedProcess[bytes]) -> str:
    return done.stdout.decode()[-3000:] + done.stderr.decode()[-2000:]


@pytest.mark.parametrize(("backend", "checkpoint"), list(_cases()))
def test_kill_at_checkpoint_then_restart_takes_effect_exactly_once(
    anvil: Anvil, drill_journal: Journal, checkpoint: str, pycache: str, record: Any
) -> None:
    """KEEPER_DRILL_CYCLES intents (default 1; `make faults` runs 10), each killed at the checkpoint and
    finished by a restart, all in one journal: every intent takes effect once (a cancelled one: never, its
    nonce taken by the cancel), no nonce gap, nothing lost."""
    cycles = int(os.environ.get("KEEPER_DRILL_CYCLES", "1"))
    backend = drill_journal.backend
    scenario = SCENARIO.get(checkpoint, "plain")
    base = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "KEEPER_FAULT_KILL_AT")},
        "PYTHONPYCACHEPREFIX": pycache,
        "KEEPER_DRILL_RPC": anvil.url,
        "KEEPER_DRILL_JOURNAL": drill_journal.url,
        "KEEPER_DRILL_KEY": DEV_KEYS[0],
        "KEEPER_DRILL_VALUE": str(VALUE),
    }
    if drill_journal.schema is not None:
        base["KEEPER_DRILL_SCHEMA"] = drill_journal.schema
    first_nonce = nonce(anvil, DEV_ACCOUNTS[0])
    recipients = []
    for _ in range(cycles):
        to = fresh_address()
        recipients.append(to)
        env = {**base, "KEEPER_DRILL_TO": to}
        killed = run_drill({**env, "KEEPER_FAULT_KILL_AT": checkpoint, "KEEPER_DRILL_SCENARIO": scenario})
        assert killed.returncode == -signal.SIGKILL, tail(killed)
        restarted = run_drill(env)
        assert restarted.returncode == 0, tail(restarted)
    # audit the chain against the journal
    effects = [balance(anvil, to) for to in recipients]
    store = open_store(drill_journal.url, schema=drill_journal.schema)
    try:
        intents = store.all_intents(DEV_ACCOUNTS[0])
        kinds = {a.kind for r in intents for a in store.attempts(r.id)}
    finally:
        store.close()
    nonces = sorted(r.nonce for r in intents if r.nonce is not None)
    states = [r.state.value for r in intents]
    chain_nonce = nonce(anvil, DEV_ACCOUNTS[0])
    pending = nonce(anvil, DEV_ACCOUNTS[0], "pending")
    effect, final = (0, "cancelled") if scenario == "cancel" else (VALUE, "finalized")
    observed = (f"{cycles} cycle(s) on {backend}: effects on chain {sum(e == effect for e in effects)}/{cycles} as "
                f"expected ({effect} each; duplicates {sum(e > VALUE for e in effects)}, "
                f"lost {sum(e < effect for e in effects)}); journal nonces "
                f"{nonces[0] if nonces else '-'}..{nonces[-1] if nonces else '-'} "
                f"vs chain {first_nonce}..{chain_nonce - 1} "
                f"(gaps {len(set(range(first_nonce, chain_nonce)) - set(nonces))}); states {sorted(set(states))}; "
                f"attempt kinds {sorted(kinds)}")
    ok = (effects == [effect] * cycles and chain_nonce == pending and nonces == list(range(first_nonce, chain_nonce))
          and states == [final] * cycles)
    name = f"crash.pipeline.{checkpoint}" + ("" if backend == "sqlite" else f".{backend}")
    situation = {"plain": "", "replace": " (stuck at a fee spike, replaced)", "cancel": " (stuck, expired, cancelled)",
                 "reorg": " (its block reorganised away)"}[scenario]
    record(name, f"SIGKILL of the pipeline process right after the `{checkpoint}` journal write{situation}, "
           f"then a restart; {backend} journal", f"{cycles} intent cycle(s), one journal",
           "zero duplicate executions, zero lost intents, zero nonce gaps (journal vs chain)", observed,
           "pass" if ok else "finding")
    assert effects == [effect] * cycles, observed  # exactly one effect each (a cancelled intent: none)
    assert chain_nonce == pending, observed  # nothing left pending
    assert nonces == list(range(first_nonce, chain_nonce)), observed  # no gap, every used nonce is journaled
    assert states == [final] * cycles, observed
    if scenario in ("replace", "cancel"):
        assert {"original", {"replace": "replacement", "cancel": "cancel"}[scenario]} <= kinds, observed
