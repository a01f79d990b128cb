"""The session hooks of tests/faults/plugin.py, exercised on a small pytest session of their own.

One inner session (a subprocess, its own temp dir and results file) has tests that leak a key in each way a
suite can (a child's captured stdout like the kill drill's, a *.log file, printed output, a registered
/metrics text), a test that fails before recording, one that fails after recording, skipped ones and one that
passes without recording. The session must exit 1, name every leaking artifact without printing the key, and
leave a row for every scenario. A clean inner session exits 0 with a passing scan row.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keeper.devnet.anvil import DEV_KEYS
from keeper.faults.results import Row, load

REPO = Path(__file__).resolve().parents[2]

LEAKY = '''
import subprocess, sys
import pytest
from keeper.devnet.anvil import DEV_KEYS
from keeper.faults import manifest
from keeper.faults.manifest import Scenario

manifest.SCENARIOS += tuple(
    Scenario(sid, f"test_inner.py::{test}", False, "demo", "demo holds")
    for sid, test in [("demo.fails_before_record", "test_fails_before_recording"),
                      ("demo.fails_after_record", "test_fails_after_recording"),
                      ("demo.skipped_in_test", "test_skips"), ("demo.skipped_by_fixture", "test_skipped_by_fixture"),
                      ("demo.no_row", "test_passes_without_recording")])


@pytest.fixture
def no_database():
    pytest.skip("no database here")


def test_child_output_like_the_kill_drill():
    env = {"PATH": "/usr/bin:/bin", "KEY": DEV_KEYS[0]}
    done = subprocess.run([sys.executable, "-c", "import os; print('key', os.environ['KEY'])"], env=env,
                          capture_output=True, text=True, check=True)
    assert done.returncode == 0


def test_log_file(tmp_path):
    (tmp_path / "daemon").mkdir()
    (tmp_path / "daemon" / "keeper.1.log").write_text("x" * 100 + DEV_KEYS[1].upper() + "\\n")


def test_printed():
    print("signer", DEV_KEYS[2].removeprefix("0x"))


def test_registered_metrics(secret_scan):
    secret_scan.add_text("/metrics scrapes", "demo /metrics", "keeper_up 1\\n# " + DEV_KEYS[3])


def test_fails_before_recording(record):
    assert 1 + 1 == 3, "the fault was not handled"


def test_fails_after_recording(record):
    record("demo.fails_after_record", "x", "once", "y", "looked fine")
    assert False, "but a later check failed"


def test_skips(record):
    pytest.skip("not today")


def test_skipped_by_fixture(no_database, record):
    pass


def test_passes_without_recording(record):
    pass
'''

CLEAN = '''
def test_clean(record, secret_scan):
    secret_scan.add_text("/metrics scrapes", "demo /metrics", "keeper_up 1")
    record("demo.clean", "x", "once", "y", "fine")
'''


@dataclass
class Inner:
    code: int
    output: str
    rows: dict[str, Row]
    results: str


def run_inner(source: str) -> Inner:
    """A pytest session with tests/conftest.py as its only plugin, outside this session's temp dir (its leaking
    log must not be found by this session's own scan)."""
    work = Path(tempfile.mkdtemp(prefix="keeper-inner-session-"))
    try:
        (work / "test_inner.py").write_text(source)
        (work / "pytest.ini").write_text("[pytest]\n")
        env = {"PATH": "/usr/bin:/bin", "KEEPER_RELIABILITY_DIR": str(work / "rel"), "PYTHONDONTWRITEBYTECODE": "1"}
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider", "-c",
             str(work / "pytest.ini"), "--rootdir", str(work), "--basetemp", str(work / "base"),
             str(work / "test_inner.py")],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
        )
        results = work / "rel" / "results.jsonl"
        text = results.read_text() if results.exists() else ""
        return Inner(done.returncode, done.stdout + done.stderr, {r.scenario: r for r in load(results)}, text)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def leaky() -> Iterator[Inner]:
    yield run_inner(LEAKY)


def test_a_leak_anywhere_fails_the_session_and_names_the_artifact_not_the_key(leaky: Inner) -> None:
    assert leaky.code == 1, leaky.output
    scan = leaky.rows["secrets.signing_key_scan"]
    assert scan.verdict == "fail" and scan.test == "session"
    for where in ("test_child_output_like_the_kill_drill: output of python", "log file",
                  "test_printed: Captured stdout call", "demo /metrics"):
        assert where in scan.observed, (where, scan.observed)
    for i in range(4):
        assert f"anvil dev key #{i}" in scan.observed
    assert "secret scan: a signing key leaked" in leaky.output
    for key in DEV_KEYS:
        bare = key.removeprefix("0x")
        assert bare not in leaky.output.lower() and bare not in leaky.results.lower()


def test_a_test_failing_before_or_after_recording_leaves_a_fail_row(leaky: Inner) -> None:
    before = leaky.rows["demo.fails_before_record"]
    assert before.verdict == "fail" and "the fault was not handled" in before.observed, before
    assert before.expected == "demo holds"
    after = leaky.rows["demo.fails_after_record"]
    assert after.verdict == "fail", after
    assert after.observed.startswith("looked fine; then test failed (call)") and "later check failed" in after.observed


def test_skipped_scenarios_leave_a_skipped_row_with_the_reason(leaky: Inner) -> None:
    assert leaky.rows["demo.skipped_in_test"].verdict == "skipped"
    assert "not today" in leaky.rows["demo.skipped_in_test"].observed
    by_fixture = leaky.rows["demo.skipped_by_fixture"]  # skipped before `record` was even set up
    assert by_fixture.verdict == "skipped" and "no database here" in by_fixture.observed


def test_a_test_passing_without_its_row_leaves_a_fail_row(leaky: Inner) -> None:
    row = leaky.rows["demo.no_row"]
    assert row.verdict == "fail" and "without recording" in row.observed


def test_a_clean_session_passes_with_a_passing_scan_row() -> None:
    clean = run_inner(CLEAN)
    assert clean.code == 0, clean.output
    scan = clean.rows["secrets.signing_key_scan"]
    assert scan.verdict == "pass" and "0 containing a key" in scan.observed, scan
    assert "1 /metrics scrapes" in scan.observed and clean.rows["demo.clean"].verdict == "pass"
    assert json.loads(clean.results.splitlines()[0])["scenario"] in {"demo.clean", "secrets.signing_key_scan"}
