"""Session-wide pytest hooks and fixtures of the reliability suite (imported by tests/conftest.py for every suite).

- `record` (function fixture): appends a RELIABILITY.md row. On teardown, a test that failed writes a `fail`
  row for each scenario it owns (keeper.faults.manifest) or recorded, a skipped one a `skipped` row, and a
  passing one that never recorded its expected row a `fail` row: no scenario leaves the table silently.
- `secret_scan` (session fixture): the session's keeper.faults.secrets.SecretScan. Every key the suites
  configure (anvil's dev keys) is scanned for in: every test report's captured stdout/stderr/log and failure
  text, every subprocess output read through `Popen.communicate` (so `subprocess.run(capture_output=True)` of
  any suite: the kill drill, the CLI tests), every `*.log` file under the session's temporary directory,
  and whatever a test registers (`secret_scan.add_text/add_file/add_key`: daemon logs, /metrics scrapes).
  At session end the result is the `secrets.signing_key_scan` row; a leak fails the session (exit 1) and names
  the artifacts, never the key.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keeper.devnet.anvil import DEV_KEYS
from keeper.faults import manifest
from keeper.faults.results import Row, append
from keeper.faults.secrets import SecretScan, key_variants

SCAN = SecretScan({f"anvil dev key #{i}": key for i, key in enumerate(DEV_KEYS)})
_RECORDED = pytest.StashKey[dict[str, Row]]()
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
_state: dict[str, Any] = {"test": "session", "basetemp": None, "ran": 0, "original": None}
_lock = threading.Lock()


# --- the secret scan --------------------------------------------------------------------------------------------
def _install_communicate_capture() -> None:
    """Every `Popen.communicate` result (and so every `subprocess.run` with captured output) is scanned."""
    original = subprocess.Popen.communicate
    if _state["original"] is not None:
        return
    _state["original"] = original

    def communicate(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> Any:
        out, err = original(self, *args, **kwargs)
        argv = str(self.args[0] if isinstance(self.args, list | tuple) and self.args else self.args).split()
        program = Path(argv[0]).name if argv else "?"
        name = f"{_state['test']}: output of {program}"
        SCAN.add_text("subprocess outputs", name, out)
        SCAN.add_text("subprocess outputs", name, err)
        return out, err

    subprocess.Popen.communicate = communicate  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    _install_communicate_capture()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _state["original"] is not None:
        subprocess.Popen.communicate = _state["original"]  # type: ignore[method-assign]
        _state["original"] = None


@pytest.fixture(scope="session")
def secret_scan() -> SecretScan:
    """The session's scan: `add_text(kind, name, text)`, `add_file(kind, name, path)`, `add_key(label, key)`."""
    return SCAN


@pytest.fixture(scope="session", autouse=True)
def _session_temp(tmp_path_factory: pytest.TempPathFactory) -> None:
    _state["basetemp"] = tmp_path_factory.getbasetemp()


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _state["test"] = nodeid


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for title, text in report.sections:
        SCAN.add_text("test reports", f"{report.nodeid}: {title}", text)
    if report.failed:
        SCAN.add_text("errors", f"{report.nodeid}: failure ({report.when})", report.longreprtext)
    if report.when == "call":
        _state["ran"] += 1


def _scan_row(found: list[tuple[str, str]]) -> Row:
    keys = len(SCAN.keys)
    observed = SCAN.summary()
    if found:
        observed += "; found in: " + "; ".join(f"{name} ({label})" for name, label in found[:20])
    return Row("secrets.signing_key_scan", f"{keys} keys: every anvil dev key (the daemons' signer.key, the kill "
               "drill's and the HA replicas' keys among them)",
               "every test report, subprocess output, daemon log (*.log under the session's temp dir and every "
               "registered log), /metrics scrape and error of the session",
               "no key (0x or bare, any case, bytes repr) appears anywhere", observed,
               "fail" if found else "pass", False, 0.0, manifest.SESSION)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _state["ran"]:
        return
    base = _state["basetemp"]
    logs = [("logs", f"log file {p.relative_to(base)}", p) for p in sorted(Path(base).rglob("*.log"))] if base else []
    found = SCAN.finish(logs)
    append(_scan_row(found))
    _state["found"] = found
    if found and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    found = _state.get("found")
    if found is None:
        return
    if found:
        terminalreporter.section("secret scan: a signing key leaked (the session fails)", red=True)
        for name, label in found:
            terminalreporter.write_line(f"{label} in {name}")
    else:
        terminalreporter.write_line(f"secret scan: {SCAN.summary()}")


# --- result rows ------------------------------------------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    if report.when == "teardown":
        _close_rows(item)
    return report


def _reason(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = str(getattr(crash, "message", "") or report.longreprtext).strip()
    if isinstance(report.longrepr, tuple):  # a skip: (path, line, reason)
        text = str(report.longrepr[2]).removeprefix("Skipped: ")
    first = " ".join(text.split())[:300]
    lowered = first.lower()
    if any(n in lowered for key in SCAN.keys.values() for n in key_variants(key)):
        return "[the failure text contained a key: see the secret scan]"
    return first


def _close_rows(item: pytest.Item) -> None:
    """The rows a finished test still owes: fail on failure, skipped on skip, fail for a missing row."""
    reports = item.stash.get(_REPORTS, {})
    recorded = item.stash.get(_RECORDED, {})
    expected = {s.id: s for s in manifest.for_test(item.nodeid)}
    if not expected and "record" not in getattr(item, "fixturenames", ()):
        return
    failed = [r for r in reports.values() if r.failed]
    skipped = [r for r in reports.values() if r.skipped]
    seconds = round(sum(r.duration for r in reports.values()), 1)
    slow = item.get_closest_marker("slow") is not None
    rows: list[Row] = []
    if failed:
        why = f"test failed ({failed[0].when}): {_reason(failed[0])}"
        for sid in {**expected, **recorded} or {f"unlisted:{item.nodeid}": None}:
            row, scenario = recorded.get(sid), expected.get(sid)
            injected = row.injected if row else (scenario.injected if scenario else item.nodeid)
            frequency = row.frequency if row else "—"
            must = row.expected if row else (scenario.must_hold if scenario else "the test passes")
            observed = f"{row.observed}; then {why}" if row else why
            rows.append(Row(sid, injected, frequency, must, observed, "fail", slow, seconds, item.nodeid))
    elif skipped:
        why = _reason(skipped[0])
        rows += [Row(sid, s.injected, "—", s.must_hold, f"skipped: {why}", "skipped", slow, 0.0, item.nodeid)
                 for sid, s in expected.items() if sid not in recorded]
    else:
        rows += [Row(sid, s.injected, "—", s.must_hold, "the test passed without recording its row", "fail", slow,
                     seconds, item.nodeid) for sid, s in expected.items() if sid not in recorded]
    for row in rows:
        append(row)


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Iterator[Callable[..., None]]:
    """`record(scenario, injected, frequency, expected, observed, verdict="pass")` appends a result row."""
    started = time.monotonic()
    slow = request.node.get_closest_marker("slow") is not None
    recorded = request.node.stash.setdefault(_RECORDED, {})

    def write(scenario: str, injected: str, frequency: str, expected: str, observed: str,  # noqa: PLR0917
              verdict: str = "pass") -> None:
        row = Row(scenario, injected, frequency, expected, observed, verdict, slow,
                  round(time.monotonic() - started, 1), request.node.nodeid)
        recorded[scenario] = row
        append(row)

    yield write
