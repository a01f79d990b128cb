"""Logging set-up: console lines in a terminal, JSON lines in a pipe, stdlib records (web3, APScheduler) through
the same renderer in both; bytes as hex; secrets (named fields, 32-byte hex, URL passwords, SecretStr) never
rendered; APScheduler's one-line-per-skipped-run warning is dropped (the scheduler counts skipped runs in a
metric instead)."""

from __future__ import annotations

import json
import logging
import os
import pty
import select
import subprocess
import sys

import pytest
from pydantic import SecretStr

from keeper import log


def test_scheduler_skip_warnings_are_dropped_other_warnings_kept(capsys: pytest.CaptureFixture[str]) -> None:
    log.configure("INFO", json=True)
    scheduler = logging.getLogger("apscheduler.scheduler")
    scheduler.warning('Execution of job "Daemon._watch" skipped: maximum number of running instances reached (1)')
    scheduler.warning("Run time of job was missed by 0:00:02")
    log.configure("INFO", json=True)  # idempotent: no second filter, no second handler
    scheduler.warning("Run time of job was missed by 0:00:03")
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    assert [x["event"] for x in lines] == [f"Run time of job was missed by 0:00:0{n}" for n in (2, 3)]
    assert all(x["logger"] == "apscheduler.scheduler" and x["level"] == "warning" for x in lines)


# --- renderers: console in a TTY, JSON in a pipe; stdlib loggers alike; bytes as hex; no secrets ---------------

KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil dev key #1 (devnet only)
TX_HASH = "0x" + "ab" * 32

CHILD = f"""
import logging
from keeper import log
log.configure("INFO")
log.get("keeper.daemon").info("tick", block=7, data=b"\\x01\\xab", tx_hash="{TX_HASH}")
logging.getLogger("web3.manager").warning("web3 says %s", "hello")
logging.getLogger("apscheduler.executors.default").warning("job %s missed", "watch")
"""


def run_child(*, tty: bool) -> list[str]:
    """The child's stdout lines, its stdout a pseudo-terminal or a pipe (log.configure decides on its own)."""
    if not tty:
        out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=True)
        return [line for line in out.stdout.splitlines() if line.strip()]
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            assert ready, "the child wrote nothing within 60 s"
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    return [line for line in b"".join(chunks).decode().replace("\r\n", "\n").splitlines() if line.strip()]


def test_a_terminal_gets_console_lines_for_structlog_and_stdlib_loggers() -> None:
    lines = run_child(tty=True)
    assert len(lines) == 3, lines
    for line in lines:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
    tick, web3, scheduler = lines
    assert "[info" in tick and "tick" in tick and "[keeper.daemon]" in tick
    assert "block=7" in tick and "data=0x01ab" in tick and f"tx_hash={TX_HASH}" in tick
    assert "[warning" in web3 and "web3 says hello" in web3 and "[web3.manager]" in web3
    assert "[warning" in scheduler and "job watch missed" in scheduler
    assert "[apscheduler.executors.default]" in scheduler


def test_a_pipe_gets_json_lines_for_structlog_and_stdlib_loggers() -> None:
    tick, web3, scheduler = (json.loads(line) for line in run_child(tty=False))
    assert tick["event"] == "tick" and tick["level"] == "info" and tick["logger"] == "keeper.daemon"
    assert tick["block"] == 7 and tick["data"] == "0x01ab" and tick["tx_hash"] == TX_HASH
    assert (web3["event"], web3["level"], web3["logger"]) == ("web3 says hello", "warning", "web3.manager")
    assert (scheduler["event"], scheduler["logger"]) == ("job watch missed", "apscheduler.executors.default")
    assert all("timestamp" in x for x in (tick, web3, scheduler))


@pytest.mark.parametrize("use_json", [True, False], ids=["json", "console"])
def test_secrets_are_never_rendered(use_json: bool, capsys: pytest.CaptureFixture[str]) -> None:
    log.configure("INFO", json=use_json)
    logger = log.get("keeper.test")
    db = "postgresql://keeper:s3cret-pw@db.internal:5432/keeper"
    logger.info("signer", key=SecretStr(KEY), setting=SecretStr(KEY), value=KEY, bare=KEY[2:], url=db,
                nested={"password": "hunter22", "calls": [{"data": KEY}]}, frame=bytearray(b"\x00\xff"))
    logger.info(f"loaded {KEY} from the environment")
    logging.getLogger("web3.manager").warning("request with %s to %s", KEY, db)
    try:
        raise ValueError(f"bad key {KEY}")
    except ValueError:
        logger.exception("signing failed")
    out = capsys.readouterr().out
    for secret in (KEY[2:], "s3cret-pw", "hunter22"):
        assert secret not in out
    assert out.count("0x[redacted-32-bytes]") >= 6  # value, bare, nested data, event text, stdlib, traceback
    assert "postgresql://keeper:[redacted]@db.internal" in out
    assert "**********" in out  # a SecretStr under an innocuous name renders masked
    assert "0x00ff" in out  # bytes, even nested in a bytearray, are hex
    assert "ValueError" in out  # the traceback is kept, minus the key


def test_hashes_and_ids_named_as_such_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    log.configure("INFO", json=True)
    log.get("keeper.test").info("sent", tx_hash=TX_HASH, intent_id=KEY, token_count=3, calldata="0x12" + KEY[2:])
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    assert line["tx_hash"] == TX_HASH and line["intent_id"] == KEY and line["token_count"] == 3
    assert line["calldata"] == "0x12" + KEY[2:]  # a longer hex run (calldata) is not a key
