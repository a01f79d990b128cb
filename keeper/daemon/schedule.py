"""The scheduler (APScheduler 3.x): the head watcher, the in-flight tracker and graceful shutdown.

Owns when things run: one head-watcher tick per new block (polled), one in-flight tick, never
overlapping (`max_instances=1`, coalescing, misfire grace), overruns logged and counted. Every run of
the head watcher is a heartbeat (liveness: the watcher is running), even when the head read fails — an
RPC outage fails readiness, not liveness, so Kubernetes does not restart-loop the pod over it.

Shutdown (`Shutdown`): SIGTERM/SIGINT only set a flag; the running tick finishes (the journal reaches a
safe state) and the process returns within `grace_seconds`. The hard bound is `grace_seconds +
FORCE_MARGIN_SECONDS` after the signal: past it a watchdog logs "shutdown bound exceeded" and ends the
process with `os._exit` — 0 when no journal section is open (`safe()`), 1 otherwise (the next start
reconciles). A Kubernetes terminationGracePeriodSeconds must exceed that bound. Scheduler shutdown is only
ever called from the main thread, never from inside a job. Must not decide, sign or send: it calls the
callables it is given.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from keeper import log
from keeper.daemon.http import Health
from keeper.daemon.metrics import Metrics

_log = log.get("keeper.schedule")

FORCE_MARGIN_SECONDS = 5.0  # after grace_seconds: time to close the store and the HTTP server before os._exit


@dataclass(frozen=True)
class Timing:
    poll_seconds: float = 0.5  # head polling interval; well under a block on most chains
    in_flight_seconds: float = 1.0
    grace_seconds: float = 20.0  # documented shutdown bound: Kubernetes' grace period must exceed it
    misfire_grace_seconds: float = 5.0


class Daemon:
    """Runs `on_block(n)` once for each new head `n` (only the newest when several arrive at once)."""

    def __init__(
        self,
        *,
        head: Callable[[], int],
        on_block: Callable[[int], None],
        on_in_flight: Callable[[int], None],
        health: Health,
        metrics: Metrics,
        timing: Timing = Timing(),
        stop: threading.Event | None = None,
    ) -> None:
        self._head = head
        self._on_block = on_block
        self._on_in_flight = on_in_flight
        self._health = health
        self._metrics = metrics
        self._timing = timing
        self._stopping = stop if stop is not None else threading.Event()
        self._last_block: int | None = None
        self._latest_head: int | None = None
        # One worker thread: the head watcher and the in-flight tracker never run at the same time, so the
        # journal and the pipeline see one caller at a time.
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={
                "max_instances": 1,
                "coalesce": True,
                "misfire_grace_time": max(1, int(timing.misfire_grace_seconds)),
            }
        )
        self._scheduler.add_listener(self._on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED | EVENT_JOB_ERROR)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _watch(self) -> None:
        if self._stopping.is_set():
            return
        started = time.monotonic()
        # liveness: the watcher runs. Before the head read, so an RPC outage shows in readiness only
        self._health.beat()
        self._metrics.heartbeat.set(time.time())
        try:
            number = self._head()
        except Exception as exc:  # the tick survives any read failure; the next poll retries
            self._metrics.ticks.labels(result="read_error").inc()
            _log.warning("head read failed", error=f"{exc.__class__.__name__}: {exc}")
            return
        self._latest_head = number
        self._metrics.head_block.set(number)
        if self._last_block is not None and number <= self._last_block:
            return
        try:
            self._on_block(number)
            self._metrics.ticks.labels(result="ok").inc()
        except Exception as exc:
            self._metrics.ticks.labels(result="error").inc()
            _log.exception("tick failed", block=number, error=f"{exc.__class__.__name__}: {exc}")
        finally:
            self._last_block = number
            elapsed = time.monotonic() - started
            self._metrics.tick_duration.observe(elapsed)
            if elapsed > self._timing.poll_seconds:
                self._metrics.tick_overruns.inc()
                _log.warning("tick overran its interval", block=number, seconds=round(elapsed, 3))

    def _track(self) -> None:
        if self._latest_head is None:
            return
        try:
            self._on_in_flight(self._latest_head)
        except Exception as exc:
            _log.exception("in-flight tracking failed", error=f"{exc.__class__.__name__}: {exc}")

    def _on_event(self, event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES:
            # expected while a tick is longer than the poll interval (the overrun itself is logged once per
            # tick by _watch): counted, not logged, so a slow tick does not flood the log with one line per poll
            self._metrics.polls_skipped.labels(job=event.job_id).inc()
        elif event.code == EVENT_JOB_MISSED:
            _log.warning("job missed its run time", job=event.job_id)

    def start(self) -> None:
        t = self._timing
        self._scheduler.add_job(self._watch, "interval", seconds=t.poll_seconds, id="head-watcher",
                                next_run_time=_now())
        self._scheduler.add_job(self._track, "interval", seconds=t.in_flight_seconds, id="in-flight")
        self._scheduler.start()
        _log.info("scheduler started", poll_seconds=t.poll_seconds, grace_seconds=t.grace_seconds)

    def request_stop(self, *_: Any) -> None:
        """Safe from a signal handler: only sets a flag; the main thread does the shutdown."""
        self._stopping.set()

    def stop(self) -> bool:
        """Stop from the main thread; True when every job finished within the grace period."""
        self._stopping.set()
        done = threading.Event()

        def shutdown() -> None:
            self._scheduler.shutdown(wait=True)
            done.set()

        threading.Thread(target=shutdown, name="keeper-shutdown", daemon=True).start()
        clean = done.wait(self._timing.grace_seconds)
        _log.info("scheduler stopped", clean=clean)
        return clean

    def run_until_stopped(self) -> bool:
        """Start, block until the stop flag is set (a signal handler sets it), stop. Whether it was clean."""
        self.start()
        while not self._stopping.wait(0.2):
            pass
        return self.stop()

    def run_until_signal(self) -> bool:
        """Start, block until SIGTERM/SIGINT, stop. Returns whether the shutdown was clean."""
        shutdown = Shutdown(self._timing.grace_seconds, stop=self._stopping)
        shutdown.install()
        try:
            return self.run_until_stopped()
        finally:
            shutdown.restore()


class Shutdown:
    """SIGTERM/SIGINT: set the stop flag and arm a watchdog that ends the process after the bound.

    `install()` (main thread) replaces the handlers; `restore()` puts the previous ones back and disarms
    the watchdog. The watchdog calls `exit(0 if safe() else 1)` (default `os._exit`) `grace_seconds +
    FORCE_MARGIN_SECONDS` after the first signal, with a log line; a second signal does not re-arm it.
    """

    def __init__(
        self,
        grace_seconds: float,
        *,
        stop: threading.Event | None = None,
        safe: Callable[[], bool] = lambda: True,
        exit: Callable[[int], None] = os._exit,
        margin_seconds: float = FORCE_MARGIN_SECONDS,
    ) -> None:
        self.bound_seconds = grace_seconds + margin_seconds
        self.requested = stop if stop is not None else threading.Event()
        self._safe = safe
        self._exit = exit
        self._previous: dict[int, Any] = {}
        self._watchdog: threading.Timer | None = None
        self._lock = threading.Lock()

    def install(self) -> None:
        for s in (signal.SIGTERM, signal.SIGINT):
            self._previous[s] = signal.signal(s, self._handle)

    def restore(self) -> None:
        with self._lock:
            if self._watchdog is not None:
                self._watchdog.cancel()
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        _log.info("signal received; finishing the current tick", signal=signal.Signals(signum).name,
                  bound_seconds=self.bound_seconds)
        self.requested.set()
        with self._lock:
            if self._watchdog is None:
                self._watchdog = threading.Timer(self.bound_seconds, self._expire)
                self._watchdog.daemon = True
                self._watchdog.name = "keeper-shutdown-watchdog"
                self._watchdog.start()

    def _expire(self) -> None:
        try:
            safe = self._safe()
        except Exception:  # the exit must happen whatever the check does
            safe = False
        code = 0 if safe else 1
        _log.error("shutdown bound exceeded; exiting now", bound_seconds=self.bound_seconds,
                   journal_safe=safe, exit_code=code)
        self._exit(code)


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
