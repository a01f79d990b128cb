"""SIGTERM during start-up: `keeper run` installs its handlers first thing, so a signal that arrives while it
checks the endpoints or reconciles the journal ends the process with 0 — and within the documented bound
(grace_seconds + FORCE_MARGIN_SECONDS) even when start-up is stuck on an endpoint that never answers."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keeper.config import render_toml
from keeper.daemon.schedule import FORCE_MARGIN_SECONDS
from keeper.devnet.anvil import free_port
from keeper.devnet.session import devnet_config

pytestmark = pytest.mark.anvil
GRACE = 1.0


@pytest.fixture
def blackhole() -> Iterator[str]:
    """An HTTP endpoint that accepts connections and never answers (a hung node or load balancer)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def spawn(
    tmp_path: Path, anvil: Any, deployment: Any, rpc_url: str | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    config: dict[str, Any] = devnet_config(anvil, deployment)
    config["state_dir"] = str(tmp_path / "state")
    config["metrics"] = {"host": "127.0.0.1", "port": free_port()}
    config["schedule"] = {"poll_seconds": 0.25, "grace_seconds": GRACE}
    if rpc_url is not None:
        config["chain"] = {**config["chain"], "rpc_urls": [rpc_url], "request_timeout_seconds": 120}
    path = tmp_path / "keeper.toml"
    path.write_text(render_toml(config))
    log_path = tmp_path / "keeper.log"
    with log_path.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "keeper.cli", "run", "--config", str(path)],
                                stdout=out, stderr=subprocess.STDOUT)
    return proc, log_path


def wait_for_line(proc: subprocess.Popen[bytes], log_path: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log_path.read_text():
            return
        if proc.poll() is not None:
            pytest.fail(f"exited early ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
        time.sleep(0.01)
    proc.kill()
    pytest.fail(f"no {text!r} line:\n{log_path.read_text()[-3000:]}")


def test_sigterm_right_after_start_exits_0(anvil: Any, deployment: Any, chain: None, tmp_path: Path) -> None:
    proc, log_path = spawn(tmp_path, anvil, deployment)
    try:
        wait_for_line(proc, log_path, "keeper starting")  # start-up (endpoints, reconcile) runs now
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=GRACE + FORCE_MARGIN_SECONDS + 30) == 0, log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log_path.read_text()
    assert "keeper stopped" in text and "Traceback" not in text


def test_sigterm_while_start_up_hangs_exits_0_within_the_bound(
    anvil: Any, deployment: Any, tmp_path: Path, blackhole: str
) -> None:
    proc, log_path = spawn(tmp_path, anvil, deployment, rpc_url=blackhole)
    try:
        wait_for_line(proc, log_path, "keeper starting")  # now blocked on eth_chainId to a node that never answers
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=GRACE + FORCE_MARGIN_SECONDS + 30)
        waited = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log_path.read_text()
    assert code == 0, text[-3000:]  # no journal section was open: a safe state
    assert "shutdown bound exceeded" in text
    assert waited >= GRACE  # it waited for the grace period, not killed by the default action
