"""The JSON Schemas in docs/schemas stay in step with the dataclasses they describe."""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pytest

from keeper.decide.plan import Plan, VaultPlan
from keeper.snapshot import Asset, Book, Glp, LendingAccount, Manager, Memory, Snapshot

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    assert data["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    return data


@pytest.mark.parametrize("cls", [Snapshot, Asset, Glp, LendingAccount, Manager, Book, Memory])
def test_snapshot_schema_matches_dataclasses(cls: type[Any]) -> None:
    schema = load("snapshot.schema.json")
    node = schema if cls is Snapshot else schema["$defs"][cls.__name__]
    assert set(node["properties"]) == {f.name for f in fields(cls)}
    assert node["additionalProperties"] is False
    required = {f.name for f in fields(cls) if f.default is MISSING}
    assert set(node.get("required", [])) == required


@pytest.mark.parametrize("cls", [Plan, VaultPlan])
def test_plan_schema_matches_dataclasses(cls: type[Any]) -> None:
    schema = load("plan.schema.json")
    node = schema if cls is Plan else schema["$defs"]["VaultPlan"]
    assert set(node["properties"]) == {f.name for f in fields(cls)}
    assert set(node["required"]) == {f.name for f in fields(cls) if f.default is MISSING}
    if cls is VaultPlan:
        assert node["properties"]["debt"]["items"]["minimum"] < 0  # changes are signed
        assert node["properties"]["debt_target"]["items"]["minimum"] == 0
