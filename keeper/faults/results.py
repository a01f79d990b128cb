"""Result rows of the reliability suite: one JSON object per scenario run, appended to a JSON-lines file.

The default file is `.keeper/reliability/results.jsonl` under the current directory (`KEEPER_RELIABILITY_DIR`
overrides the directory). `python -m keeper.faults.report` renders RELIABILITY.md from it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Verdict = str  # "pass" | "fail" | "finding"


@dataclass
class Row:
    scenario: str  # stable id, e.g. "rpc.http_5xx.failover"
    injected: str  # what was injected
    frequency: str  # how often / how long
    expected: str  # what must hold
    observed: str  # what was measured
    verdict: Verdict = "pass"
    slow: bool = False
    seconds: float = 0.0
    test: str = ""  # pytest node id
    at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def results_dir() -> Path:
    return Path(os.environ.get("KEEPER_RELIABILITY_DIR", ".keeper/reliability"))


def results_file() -> Path:
    return results_dir() / "results.jsonl"


def append(row: Row, path: Path | None = None) -> None:
    target = path or results_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a") as out:
        out.write(json.dumps(row.to_json(), sort_keys=True) + "\n")


def load(path: Path | None = None) -> list[Row]:
    """Every row, the latest run of each scenario last (earlier runs of a scenario are dropped)."""
    source = path or results_file()
    if not source.exists():
        return []
    latest: dict[str, Row] = {}
    for line in source.read_text().splitlines():
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            row = Row(**data)
        except (ValueError, TypeError):
            continue
        latest.pop(row.scenario, None)
        latest[row.scenario] = row
    return sorted(latest.values(), key=lambda r: r.scenario)
