"""KEEPER_FAULT_KILL_AT: parsing, off by default, SIGKILL right after the n-th persist of a checkpoint."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from keeper.errors import ConfigError
from keeper.execute.killpoint import ENV, from_env, parse
from keeper.execute.pipeline import CHECKPOINTS

REPO = Path(__file__).resolve().parents[2]


def test_parse_checkpoint_and_occurrence() -> None:
    assert parse("signed") == ("signed", 1)
    assert parse(" sent@3 ") == ("sent", 3)
    assert all(parse(label) == (label, 1) for label in CHECKPOINTS)


@pytest.mark.parametrize(
    ("text", "reason"),
    [("sined", "unknown checkpoint 'sined'"), ("sent@0", "positive integer"), ("sent@x", "positive integer"),
     ("@2", "unknown checkpoint ''"), ("sent@-1", "positive integer")],
)
def test_bad_values_name_the_variable_and_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as info:
        from_env({ENV: text})
    assert str(info.value).startswith(f"{ENV}: ")


def test_off_unless_the_variable_is_set() -> None:
    assert from_env({}) is None
    assert from_env({ENV: ""}) is None
    assert from_env({ENV: "   "}) is None
    assert from_env({"KEEPER_DRILL_KILL_AT": "signed"}) is None


SCRIPT = """
from keeper.execute.killpoint import from_env
from keeper.store.model import Intent, IntentRecord, State
record = IntentRecord(7, "0x" + "11" * 20, Intent("k", to="0x" + "22" * 20), State.SIGNED)
hook = from_env({"KEEPER_FAULT_KILL_AT": "sent@2"})
for label in ("planned", "sent", "broadcast", "sent", "broadcast"):
    hook(label, record)
    print("after", label, flush=True)
"""


def test_kills_the_process_right_after_the_nth_persist_of_the_checkpoint() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    printed = [line for line in done.stdout.decode().splitlines() if line.startswith("after ")]
    assert printed == ["after planned", "after sent", "after broadcast"]  # killed inside the 2nd `sent`
    out = done.stdout.decode()
    assert "fault.kill_armed" in out and "fault.kill" in out and "intent_id=7" in out
