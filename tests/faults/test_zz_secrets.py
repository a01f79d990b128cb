"""Runs last in tests/faults: the signing key must be absent from every daemon log line, every /metrics scrape
and every CLI message the suite produced (with or without 0x, any letter case)."""

from __future__ import annotations

from typing import Any

from keeper.devnet.anvil import DEV_KEYS
from keeper.faults.secrets import leaks


def test_signing_key_absent_from_every_log_metric_and_error(record: Any, artifacts: Any) -> None:
    collected, _daemons = artifacts
    artifacts = list(collected)
    lines = sum(text.count("\n") + 1 for _, text in artifacts)
    scrapes = sum(1 for name, _ in artifacts if "/metrics" in name)
    logs = sum(1 for name, _ in artifacts if name.endswith(" log"))
    clis = sum(1 for name, _ in artifacts if name.startswith("cli "))
    found = leaks(artifacts, DEV_KEYS[1])
    found += leaks([(n, t.upper()) for n, t in artifacts], DEV_KEYS[1])
    observed = (f"{logs} daemon logs, {scrapes} /metrics scrapes, {clis} CLI outputs ({lines} lines): "
                f"{len(found)} containing the key")
    record("secrets.signing_key_scan", "anvil dev key #1 configured as signer.key in every daemon of the run",
           "every artifact of the session", "the key (0x or bare, any case) appears nowhere", observed,
           "pass" if not found else "fail")
    assert not found, found
