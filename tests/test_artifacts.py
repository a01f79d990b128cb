"""Compiled artifacts in abis/ must match contracts/: a stale artifact fails the build."""

from __future__ import annotations

import json
import re
from pathlib import Path

from keeper.chain.artifacts import abi_dir, contracts_dir, source_hash


def artifacts() -> list[Path]:
    return sorted(abi_dir().glob("*.json"))


def test_every_artifact_is_fresh() -> None:
    current = source_hash()
    found = artifacts()
    assert found, "no artifacts in abis/; run `make abis`"
    stale = [p.name for p in found if json.loads(p.read_text())["sourceHash"] != current]
    assert not stale, f"stale against contracts/ (run `make abis` and commit): {stale}"


def test_every_deployable_contract_has_an_artifact() -> None:
    declared: set[str] = set()
    for path in contracts_dir().rglob("*.sol"):
        declared |= set(re.findall(r"^\s*contract\s+(\w+)", path.read_text(), flags=re.MULTILINE))
    names = {p.stem for p in artifacts()}
    assert declared <= names, f"missing artifacts: {sorted(declared - names)}"
    for path in artifacts():
        data = json.loads(path.read_text())
        assert data["bytecode"].startswith("0x") and len(data["bytecode"]) > 10, path.name
        assert isinstance(data["abi"], list) and data["abi"], path.name


def test_source_hash_changes_with_any_source_byte(tmp_path: Path) -> None:
    (tmp_path / "A.sol").write_text("contract A {}")
    before = source_hash(tmp_path)
    (tmp_path / "A.sol").write_text("contract A { }")
    assert source_hash(tmp_path) != before
