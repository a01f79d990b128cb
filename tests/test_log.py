"""Logging set-up: stdlib records (APScheduler) go through the same JSON renderer; APScheduler's one-line-
per-skipped-run warning is dropped (the scheduler counts skipped runs in a metric instead)."""

from __future__ import annotations

import json
import logging

import pytest

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
