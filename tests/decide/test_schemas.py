"""The JSON Schemas in docs/schemas stay in step with the dataclasses they describe, and real documents (a snapshot
with every memory field, a plan, `keeper plan --format json`) validate against them."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import MISSING, fields, replace
from pathlib import Path
from typing import Any

import pytest

from keeper.decide import Rules, decide
from keeper.decide.plan import Plan, VaultPlan, plan_from_json_dict, plan_to_json_dict
from keeper.errors import InputError
from keeper.snapshot import Asset, Book, Glp, LendingAccount, Manager, Memory, Snapshot, snapshot_from_json_dict
from tests.decide.builders import NOW, apply_plan, funded, market
from tests.decide.schema_check import SCHEMAS, errors


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


def _decided_documents() -> tuple[dict[str, Any], dict[str, Any]]:
    """A snapshot whose memory uses every field, and the plan decided from it, as parsed JSON."""
    snap = market(books=funded())
    first = decide(snap, {0: Rules(notional_cap_usd=50_000)})
    assert first.plan is not None
    fitted = apply_plan(snap, first.plan)
    mem = replace(first.memory_after_execution, acks=(("band:0:WETH", NOW),), halts=(("band:0:WETH", NOW - 1),),
                  oi_applied_vault=((1, "WETH", -(10**21)),))
    assert mem.partial_targets and mem.invested and mem.marks and mem.weights
    doc = json.loads(json.dumps(replace(fitted, memory=mem).to_json_dict()))
    plan = json.loads(json.dumps(plan_to_json_dict(first.plan)))
    return doc, plan


def test_a_snapshot_document_validates_against_the_snapshot_schema() -> None:
    doc, _ = _decided_documents()
    assert errors(doc, "snapshot.schema.json") == []
    assert snapshot_from_json_dict(doc).memory.partial_targets  # and the parser reads it back


def test_a_plan_document_validates_against_the_plan_schema() -> None:
    _, plan = _decided_documents()
    assert plan["vaults"] and any(v["partial"] for v in plan["vaults"])
    assert errors(plan, "plan.schema.json") == []


def test_keeper_plan_json_output_validates_against_the_output_schema(tmp_path: Path) -> None:
    doc, _ = _decided_documents()
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(doc))
    out = subprocess.run([sys.executable, "-m", "keeper.cli", "plan", "--snapshot", str(path), "--format", "json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["plan"] is not None and result["fired"]
    assert errors(result, "plan-output.schema.json") == []
    assert errors({**result, "plan": None}, "plan-output.schema.json") == []


@pytest.mark.parametrize(("path", "value", "where"), [
    (("assets", 1, "feed_answer"), 0, "assets/1/feed_answer"),
    (("assets", 0, "feed_decimals"), 40, "assets/0/feed_decimals"),
    (("books", 0, "glp"), "5", "books/0/glp"),
    (("memory", "partial_targets"), [[0, "GLP"]], "memory/partial_targets/0"),
])
def test_the_schema_rejects_what_the_parser_rejects(path: tuple[Any, ...], value: object, where: str) -> None:
    doc, _ = _decided_documents()
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert any(e.startswith(where) for e in errors(doc, "snapshot.schema.json"))
    with pytest.raises(InputError):
        snapshot_from_json_dict(doc)


def test_a_plan_with_a_fractional_amount_is_rejected_by_schema_and_parser() -> None:
    _, plan = _decided_documents()
    plan["vaults"][0]["glp"] = 1.5
    assert any(e.startswith("vaults/0/glp") for e in errors(plan, "plan.schema.json"))
    with pytest.raises(InputError):
        plan_from_json_dict(plan)
