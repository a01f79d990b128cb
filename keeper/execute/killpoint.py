"""Test-only fault injection: SIGKILL this process right after a chosen journal checkpoint.

    KEEPER_FAULT_KILL_AT=<checkpoint>[@<n>]     e.g. signed, sent@2, replacement_signed, reorged

`from_env(os.environ)` returns an `on_persist` hook for `Pipeline` that kills the current process with SIGKILL
(no cleanup, no atexit, no flush of anything but stdout/stderr) right after the n-th (default 1st) persist of
that checkpoint in this process, or None when the variable is unset or empty: it is off unless asked for. The
crash drill (keeper.execute.drill) and the daemon-level crash tests use it to prove that a kill -9 at any
journal state, then a restart, gives exactly one effect and no nonce gap.

Owns parsing the variable and the kill. Must not be armed in production: it exists only for fault tests. It
logs the checkpoint and the intent id when armed and when it fires, nothing else (no transaction contents,
no key material).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping

from keeper import log
from keeper.errors import ConfigError
from keeper.execute.pipeline import CHECKPOINTS
from keeper.store.model import IntentRecord

ENV = "KEEPER_FAULT_KILL_AT"
KillHook = Callable[[str, IntentRecord], None]

_log = log.get("keeper.execute.killpoint")


def parse(text: str) -> tuple[str, int]:
    """`<checkpoint>[@<n>]` → (checkpoint, n); ConfigError naming the variable and the reason."""
    label, _, count = text.strip().partition("@")
    if label not in CHECKPOINTS:
        raise ConfigError(f"{ENV}: unknown checkpoint {label!r} (one of {', '.join(CHECKPOINTS)})")
    if not count:
        return label, 1
    if not count.isdigit() or int(count) < 1:
        raise ConfigError(f"{ENV}: the occurrence after '@' must be a positive integer, got {count!r}")
    return label, int(count)


def from_env(env: Mapping[str, str]) -> KillHook | None:
    """The kill hook `KEEPER_FAULT_KILL_AT` asks for, or None (unset or empty: no fault injection)."""
    text = env.get(ENV, "")
    if not text.strip():
        return None
    label, occurrence = parse(text)
    seen = 0
    lock = threading.Lock()
    _log.warning("fault.kill_armed", checkpoint=label, occurrence=occurrence, note="test-only fault injection")

    def kill_after(checkpoint: str, record: IntentRecord) -> None:
        nonlocal seen
        if checkpoint != label:
            return
        with lock:
            seen += 1
            if seen != occurrence:
                return
        _log.warning("fault.kill", checkpoint=label, occurrence=occurrence, intent_id=record.id)
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    return kill_after
