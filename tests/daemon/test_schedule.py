"""The scheduler: one tick per new head, no overlap, overruns counted, bounded clean stop; liveness from every
watcher run (an RPC outage is not a liveness failure); the shutdown watchdog's bound and exit code."""

from __future__ import annotations

import os
import signal
import threading
import time

from keeper.daemon.http import Health
from keeper.daemon.metrics import Metrics
from keeper.daemon.schedule import Daemon, Shutdown, Timing


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def wait_until(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_each_new_head_is_handled_once_and_ticks_never_overlap() -> None:
    head = {"n": 10}
    seen: list[int] = []
    running = threading.Lock()
    overlaps: list[int] = []

    def on_block(n: int) -> None:
        if not running.acquire(blocking=False):
            overlaps.append(n)
            return
        try:
            seen.append(n)
            time.sleep(0.15)  # longer than the poll interval: the next poll must not overlap
        finally:
            running.release()

    metrics = Metrics()
    daemon = Daemon(head=lambda: head["n"], on_block=on_block, on_in_flight=lambda n: None,
                    health=Health(30), metrics=metrics, timing=Timing(poll_seconds=0.05, grace_seconds=5))
    daemon.start()
    try:
        wait_until(lambda: seen == [10])
        time.sleep(0.3)
        assert seen == [10]  # same head: no second tick
        head["n"] = 13  # three blocks at once: only the newest is handled
        wait_until(lambda: seen == [10, 13])
    finally:
        assert daemon.stop()
    assert overlaps == []
    assert sample(metrics, "keeper_ticks_total", result="ok") == 2
    assert sample(metrics, "keeper_tick_overruns_total") >= 1  # 0.15 s ticks on a 0.05 s interval
    # the polls that found the worker busy are counted, not logged one line each
    assert sample(metrics, "keeper_scheduler_skipped_runs_total", job="head-watcher") >= 1


def test_failing_head_read_is_counted_and_tick_survives() -> None:
    calls = {"n": 0}

    def head() -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("node down")
        return 5

    seen: list[int] = []
    metrics = Metrics()
    daemon = Daemon(head=head, on_block=seen.append, on_in_flight=lambda n: None, health=Health(30),
                    metrics=metrics, timing=Timing(poll_seconds=0.05))
    daemon.start()
    try:
        wait_until(lambda: seen == [5])
    finally:
        daemon.stop()
    assert sample(metrics, "keeper_ticks_total", result="read_error") == 1


def test_stop_waits_for_running_tick_and_takes_no_new_decision() -> None:
    entered = threading.Event()
    finished = threading.Event()
    heads = iter(range(1, 1000))

    def on_block(n: int) -> None:
        entered.set()
        time.sleep(0.3)
        finished.set()

    daemon = Daemon(head=lambda: next(heads), on_block=on_block, on_in_flight=lambda n: None,
                    health=Health(30), metrics=Metrics(), timing=Timing(poll_seconds=0.05, grace_seconds=5))
    daemon.start()
    assert entered.wait(5)
    daemon.request_stop()
    assert daemon.stop() is True
    assert finished.is_set()  # the running tick completed before stop returned


def test_every_watcher_run_is_a_heartbeat_even_when_the_head_read_fails() -> None:
    def head() -> int:
        raise ConnectionError("node down")

    metrics = Metrics()
    health = Health(30)
    daemon = Daemon(head=head, on_block=lambda n: None, on_in_flight=lambda n: None, health=health,
                    metrics=metrics, timing=Timing(poll_seconds=0.05))
    before = time.time()
    daemon.start()
    try:
        wait_until(lambda: sample(metrics, "keeper_ticks_total", result="read_error") >= 2)
    finally:
        daemon.stop()
    assert health.live()[0] is True  # the watcher runs: the pod is alive (readiness reports the outage)
    assert sample(metrics, "keeper_heartbeat_timestamp_seconds") >= before


def test_shutdown_watchdog_exits_after_the_bound_with_the_journal_state() -> None:
    exits: list[int] = []
    safe = {"now": True}
    shutdown = Shutdown(0.05, safe=lambda: safe["now"], exit=exits.append, margin_seconds=0.05)
    assert shutdown.bound_seconds == 0.1
    previous = signal.getsignal(signal.SIGTERM)
    shutdown.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)  # our handler: only a flag and the watchdog, no default action
        assert shutdown.requested.wait(5)
        wait_until(lambda: exits == [0])
        os.kill(os.getpid(), signal.SIGINT)  # a second signal does not re-arm the watchdog
        time.sleep(0.3)
        assert exits == [0]
    finally:
        shutdown.restore()
    assert signal.getsignal(signal.SIGTERM) == previous  # the previous handler is back

    unsafe = Shutdown(0.01, safe=lambda: False, exit=exits.append, margin_seconds=0.01)
    unsafe.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        wait_until(lambda: exits == [0, 1])  # a journal section was open: exit 1, the next start reconciles
    finally:
        unsafe.restore()


def test_restore_disarms_the_watchdog() -> None:
    exits: list[int] = []
    shutdown = Shutdown(0.2, exit=exits.append, margin_seconds=0.0)
    shutdown.install()
    os.kill(os.getpid(), signal.SIGTERM)
    assert shutdown.requested.wait(5)
    shutdown.restore()  # run() returned in time: the process must not be ended later
    time.sleep(0.5)
    assert exits == []
