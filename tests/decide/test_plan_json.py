"""Plan JSON round trip (exact ints), malformed plans name the field, the table, and Memory in the snapshot."""

from __future__ import annotations

import json
from typing import Any

import pytest

from keeper.decide import decide, plan_from_json_dict, plan_to_json_dict, render_table
from keeper.decide.plan import Plan
from keeper.errors import InputError
from keeper.snapshot import Memory, memory_from_json_dict, snapshot_from_json_dict
from tests.decide.builders import NOW, funded, market


def a_plan() -> Plan:
    d = decide(market(books=funded()), {})
    assert d.plan is not None
    return d.plan


def test_round_trip_is_exact() -> None:
    plan = a_plan()
    text = json.dumps(plan_to_json_dict(plan))
    assert plan_from_json_dict(json.loads(text)) == plan
    data = json.loads(text)
    assert isinstance(data["vaults"][0]["glp"], int)  # ints stay JSON ints
    assert data["vaults"][0]["debt"][1] == plan.vault(0).debt[1]


def test_big_and_negative_integers_survive() -> None:
    plan = a_plan()
    data: dict[str, Any] = json.loads(json.dumps(plan_to_json_dict(plan)))
    data["vaults"][0]["glp"] = -(2**255)
    data["vaults"][0]["glp_target"] = 2**256 - 1
    again = plan_from_json_dict(json.loads(json.dumps(data)))
    assert (again.vaults[0].glp, again.vaults[0].glp_target) == (-(2**255), 2**256 - 1)


@pytest.mark.parametrize(("mutate", "field", "reason"), [
    (lambda d: d["vaults"][1].__setitem__("glp", 1.5), "vaults[1].glp", "expected an integer"),
    (lambda d: d["vaults"][0]["debt"].__setitem__(2, "7"), "vaults[0].debt[2]", "expected an integer"),
    (lambda d: d["vaults"][0].__setitem__("cash", [1]), "vaults[0].cash", "has 1 entries, expected 3"),
    (lambda d: d["vaults"][2]["debt_target"].__setitem__(0, -1), "vaults[2].debt_target[0]", "must not be negative"),
    (lambda d: d["vaults"][0].pop("interest"), "vaults[0].interest", "missing"),
    (lambda d: d["vaults"][0].__setitem__("oops", 1), "vaults[0].oops", "unknown field"),
    (lambda d: d["vaults"][0].__setitem__("denomination", 5), "vaults[0].denomination", "out of range"),
    (lambda d: d["vaults"][0].__setitem__("partial", "no"), "vaults[0].partial", "expected true or false"),
    (lambda d: d.__setitem__("harvest", 1), "harvest", "expected true or false"),
    (lambda d: d.__setitem__("version", 2), "version", "unsupported plan version"),
    (lambda d: d.__setitem__("decimals", [6]), "decimals", "has 1 entries, expected 3"),
    (lambda d: d["reasons"].__setitem__(0, 3), "reasons[0]", "expected a non-empty string"),
    (lambda d: d["vaults"].append(d["vaults"][0]), "vaults", "more than once"),
    (lambda d: d.__setitem__("vaults", {}), "vaults", "expected a list"),
])
def test_malformed_plan_names_the_field(mutate: Any, field: str, reason: str) -> None:
    data = json.loads(json.dumps(plan_to_json_dict(a_plan())))
    mutate(data)
    with pytest.raises(InputError) as info:
        plan_from_json_dict(data)
    assert info.value.field == field
    assert reason in info.value.reason


def test_plan_not_an_object() -> None:
    with pytest.raises(InputError, match="expected an object"):
        plan_from_json_dict([])


def test_table_shows_changes_targets_and_reasons() -> None:
    text = render_table(a_plan())
    assert text.splitlines()[0] == "plan @ block 100 (t=1700000000) flags: none"
    assert "instrument" in text.splitlines()[1]
    row = next(line for line in text.splitlines() if line.startswith("0") and "buffer/cash" in line)
    assert row.split() == ["0", "buffer/cash", "USDC", "-950,000.0000", "50,000.0000"]
    assert "- vault 0: buffer outside [200, 1000] bps: reset to 500" in text


def test_snapshot_carries_memory_through_json() -> None:
    mem = Memory(oi_drift_since=(("WETH", NOW),), oi_applied=(("WBTC", -5), ("WETH", 10**21)), marked_at=NOW,
                 hedge_pnl=((0, -(10**35)), (2, 7)), weights=(("WETH", NOW, 250_000),), halts=(("band:0:WETH", 1),),
                 oi_applied_vault=((2, "WETH", -(10**20)),), partial_targets=((0, "GLP", 10**24), (0, "WETH", 7)))
    snap = market(books=funded(), memory=mem)
    again = snapshot_from_json_dict(json.loads(json.dumps(snap.to_json_dict())))
    assert again.memory == mem
    data = snap.to_json_dict()
    data.pop("memory")
    assert snapshot_from_json_dict(json.loads(json.dumps(data))).memory == Memory()


@pytest.mark.parametrize(("raw", "field", "reason"), [
    ({"oi_applied": [["WETH"]]}, "memory.oi_applied[0]", "expected a list of 2 items"),
    ({"oi_drift_since": [["WETH", -1]]}, "memory.oi_drift_since[0][1]", "must not be negative"),
    ({"marks": [[3, 1]]}, "memory.marks[0][0]", "expected a non-empty string"),
    ({"hedge_pnl": [[0, 1], [0, 2]]}, "memory.hedge_pnl", "duplicate key"),
    ({"nope": []}, "memory.nope", "unknown field"),
    ({"weights": "x"}, "memory.weights", "expected a list"),
    ({"partial_targets": [[0, "GLP"]]}, "memory.partial_targets[0]", "expected a list of 3 items"),
    ({"partial_targets": [[0, "WETH", -1]]}, "memory.partial_targets[0][2]", "must not be negative"),
    ({"oi_applied_vault": [[0, "WETH", 1], [0, "WETH", 2]]}, "memory.oi_applied_vault", "duplicate key"),
    ({"oi_applied_vault": [["0", "WETH", 1]]}, "memory.oi_applied_vault[0][0]", "expected an integer"),
])
def test_malformed_memory_names_the_field(raw: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(InputError) as info:
        memory_from_json_dict(raw)
    assert info.value.field == field
    assert reason in info.value.reason
