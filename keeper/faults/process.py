"""`keeper run` as a subprocess under test: config, start, signals, metrics scrapes and /proc statistics.

Everything it starts is stopped by pid (`stop()`; `kill()` is SIGKILL). With a `scan`
(keeper.faults.secrets.SecretScan), every log file is registered for the secret scan as it is opened and
every /metrics scrape that shows a new name, label or help text (values are numbers) is kept in `scrapes`
and scanned as it is read.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from keeper.config import render_toml
from keeper.faults.secrets import SecretScan


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of exactly `name` whose labels include `labels` (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{", 1)[0] != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback URL
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode()
    except OSError:
        return 0, ""


@dataclass(frozen=True)
class ProcStats:
    rss_kb: int
    fds: int
    threads: int


def proc_stats(pid: int) -> ProcStats:
    """Resident set size, open file descriptors and threads of a live Linux process."""
    rss = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return ProcStats(rss, fds, threads)


@dataclass
class DaemonProcess:
    """One `keeper run` child. `config` is the dict given to render_toml (metrics port must be set)."""

    config: dict[str, Any]
    workdir: Path
    name: str = "keeper"
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] | None = None
    scrapes: list[str] = field(default_factory=list)  # every scrape that showed a line not seen before
    scrape_count: int = 0
    _seen: set[str] = field(default_factory=set, repr=False)
    logs: list[Path] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    scan: SecretScan | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        m = self.config["metrics"]
        return f"http://{m['host']}:{m['port']}"

    @property
    def config_path(self) -> Path:
        return self.workdir / f"{self.name}.toml"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.{self.starts}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> DaemonProcess:
        """Start (or restart after a stop/kill) with the current config."""
        if self.alive():
            raise RuntimeError("daemon already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(render_toml(self.config))
        self.starts += 1
        self.logs.append(self.log_path)
        if self.scan is not None:
            self.scan.add_file("daemon logs", f"{self.name} log {self.log_path.name}", self.log_path)
        env = {**os.environ, **(self.env or {})}
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "keeper.cli", "run", "--config", str(self.config_path), *self.extra_args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM by pid, SIGKILL after `timeout`; returns the exit code (None if never started)."""
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        return proc.returncode

    def kill(self) -> int:
        """SIGKILL by pid (a crash): no handler runs, no journal write finishes."""
        assert self.process is not None
        self.process.kill()
        return self.process.wait(timeout=10)

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- observation ---------------------------------------------------------------------------------------
    def metrics(self) -> str:
        status, text = http_get(self.url + "/metrics")
        if status != 200:
            return ""
        self.scrape_count += 1
        # a sample's value is a number and cannot carry a secret: a scrape is kept and scanned only when a name,
        # label or help text is new, so a long soak (thousands of polls of 1000 vaults) keeps memory and the test
        # process's CPU flat, yet every line that could hold a secret is scanned
        shapes = {line.rsplit(" ", 1)[0] if not line.startswith("#") else line for line in text.splitlines()}
        if not shapes <= self._seen:
            self._seen |= shapes
            self.scrapes.append(text)
            if self.scan is not None:
                self.scan.add_text("/metrics scrapes", f"{self.name} /metrics", text)
        return text

    def value(self, name: str, **labels: str) -> float:
        return metric(self.metrics(), name, **labels)

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def stats(self) -> ProcStats:
        return proc_stats(self.pid)

    def wait_until(
        self,
        cond: Callable[[], bool],
        what: str,
        timeout: float = 45.0,
        *,
        between: Callable[[], None] | None = None,
        interval: float = 0.3,
    ) -> float:
        """Poll `cond` (calling `between`, e.g. mining a block, between polls); returns the seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if not self.alive():
                raise AssertionError(f"daemon exited early ({what}):\n{self.log_text()[-3000:]}")
            if cond():
                return time.monotonic() - started
            if between is not None:
                between()
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}:\n{self.log_text()[-4000:]}")

    def log_events(self) -> list[str]:
        """The `event` field of every JSON log line (non-JSON lines as they are)."""
        import json

        out = []
        for line in self.log_text().splitlines():
            try:
                out.append(str(json.loads(line).get("event", "")))
            except ValueError:
                out.append(line)
        return out


def stop_all(daemons: Iterable[DaemonProcess]) -> None:
    for daemon in daemons:
        daemon.stop()
