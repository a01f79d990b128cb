"""The expected-scenario manifest against the tests `make faults` collects, and the report built on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from keeper.faults import manifest
from keeper.faults.manifest import SCENARIOS, SESSION, Scenario
from keeper.faults.report import coverage, main, problems, render
from keeper.faults.results import Row, append

REPO = Path(__file__).resolve().parents[2]
FAULT_TESTS = ["tests/faults", "tests/execute/test_kill_drill.py", "tests/ha/test_failover.py"]
COLLECTOR = '''
import json

def pytest_collection_finish(session):
    items = [{"id": i.nodeid, "slow": i.get_closest_marker("slow") is not None,
              "record": "record" in getattr(i, "fixturenames", ())} for i in session.items]
    print("COLLECTED " + json.dumps(items))
'''


def test_manifest_names_every_recording_test_of_make_faults_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "collector.py").write_text(COLLECTOR)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "slow or not slow", "-p", "collector",
         "-p", "no:cacheprovider", *FAULT_TESTS],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{tmp_path}:{REPO}", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("COLLECTED ")), None)
    assert line is not None, done.stdout[-2000:] + done.stderr[-2000:]
    items = {i["id"]: i for i in json.loads(line.removeprefix("COLLECTED "))}
    listed = {s.test for s in SCENARIOS if s.test != SESSION}
    unknown = sorted(t for t in listed if t not in items)
    assert not unknown, f"manifest tests that do not exist: {unknown}"
    unlisted = sorted(i for i, item in items.items() if item["record"] and i not in listed)
    assert not unlisted, f"recording tests missing from keeper/faults/manifest.py: {unlisted}"
    wrong = sorted(s.id for s in SCENARIOS if s.test in items and items[s.test]["slow"] != s.slow)
    assert not wrong, f"slow flag differs from the test's marker: {wrong}"


def test_scenario_ids_are_unique_and_map_back_to_their_test() -> None:
    ids = [s.id for s in SCENARIOS]
    assert len(ids) == len(set(ids))
    for s in SCENARIOS:
        if s.test != SESSION:
            assert s in manifest.for_test(s.test) and s in manifest.for_test("/elsewhere/" + s.test)


EXPECTED = (
    Scenario("a.pass", "t.py::a", False, "a", "a holds"),
    Scenario("b.slow", "t.py::b", True, "b", "b holds"),
    Scenario("c.db", "t.py::c", False, "c", "c holds", "PostgreSQL"),
    Scenario("d.gone", "t.py::d", True, "d", "d holds"),
)


def _row(sid: str, verdict: str = "pass", observed: str = "fine") -> Row:
    return Row(sid, "injected", "once", "holds", observed, verdict, sid == "b.slow", 1.0, f"t.py::{sid}")


def test_report_lists_skipped_and_missing_scenarios_and_states_what_ran() -> None:
    rows = [_row("a.pass"), _row("b.slow", "finding", "a tick was lost"),
            _row("c.db", "skipped", "skipped: KEEPER_TEST_DATABASE_URL is not set"), _row("x.new")]
    text = render(rows, "results.jsonl", EXPECTED)
    assert "Ran 2 of the 4 expected scenarios (1 of the 2 slow ones ran: `make faults` runs them all)" in text
    assert "\nverdicts: finding 1, pass 2." in text and "Not run: 2" in text
    not_run = text.split("## Not run", 1)[1]
    assert "`c.db`: skipped — KEEPER_TEST_DATABASE_URL is not set" in not_run
    assert "`d.gone`: no row — its test (`t.py::d`) did not run" in not_run
    assert "| `c.db` |" not in text  # a skipped scenario is not a table row
    assert "`x.new` (t.py::x.new): add it to keeper/faults/manifest.py" in text
    assert "`b.slow` (**finding**): a tick was lost" in text.split("## Findings and failures", 1)[1]
    cov = coverage(rows, EXPECTED)
    assert [s.id for s in cov.missing] == ["d.gone"] and [r.scenario for r in cov.skipped] == ["c.db"]


def test_problems_fail_on_fail_finding_missing_and_skipped_rows() -> None:
    clean = [_row(s.id) for s in EXPECTED]
    assert problems(clean, expected=EXPECTED) == []
    assert problems([*clean[:3], _row("d.gone", "fail")], expected=EXPECTED) == ["d.gone: fail"]
    assert problems(clean[:3], expected=EXPECTED) == ["d.gone: no row"]
    skipped = [*clean[:2], _row("c.db", "skipped"), clean[3]]
    assert problems(skipped, expected=EXPECTED) == ["c.db: skipped"]
    assert problems(skipped, allow_skipped=True, expected=EXPECTED) == []


@pytest.mark.parametrize(("change", "code"), [(None, 0), ("finding", 1), ("fail", 1), ("missing", 1)])
def test_report_check_exits_non_zero_unless_every_scenario_passed(
    tmp_path: Path, change: str | None, code: int
) -> None:
    results = tmp_path / "results.jsonl"
    for i, s in enumerate(SCENARIOS):
        if i == 3 and change == "missing":
            continue
        append(_row(s.id, change if i == 3 and change in ("finding", "fail") else "pass"), results)
    out = tmp_path / "RELIABILITY.md"
    assert main(["--results", str(results), "--out", str(out), "--check"]) == code
    assert main(["--results", str(results), "--out", str(out)]) == 0  # without --check: only the file
    assert out.read_text().startswith("# Reliability")
