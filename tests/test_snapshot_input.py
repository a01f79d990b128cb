"""Malformed snapshot values: `snapshot_from_json_dict` names the JSON path and the reason, `keeper plan --snapshot`
exits 2 without a traceback, and any snapshot the validation accepts can be decided without an exception."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keeper.decide import Rules, decide
from keeper.errors import InputError
from keeper.snapshot import snapshot_from_json_dict
from tests.decide.builders import NOW, apply_plan, book, funded, market

Mutation = Callable[[dict[str, Any]], None]


def document() -> dict[str, Any]:
    """A devnet-like snapshot after a capped first fit (three invested vaults, one asking to withdraw), with a
    memory that uses every field, as parsed JSON."""
    snap = market(books=funded())
    d = decide(snap, {0: Rules(notional_cap_usd=50_000)})
    assert d.plan is not None
    mem = replace(d.memory_after_execution, halts=(("band:0:WETH", NOW),), acks=(("band:0:WETH", NOW + 1),),
                  oi_applied_vault=((1, "WETH", 5),), oi_drift_since=(("WETH", NOW - 10),))
    fitted = replace(apply_plan(snap, d.plan), memory=mem)
    data: dict[str, Any] = json.loads(json.dumps(fitted.to_json_dict()))
    data["books"][0]["pending_withdrawal_shares"] = 10**23
    return data


def setter(*path: str | int, value: object) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


def duplicate_book(data: dict[str, Any]) -> None:
    data["books"].append(dict(data["books"][1]))


def more_withdrawn_than_shares(data: dict[str, Any]) -> None:
    data["books"][2]["pending_withdrawal_shares"] = data["books"][2]["total_shares"] + 1


CASES: list[tuple[str, Mutation, str, str]] = [
    ("zero feed answer", setter("assets", 1, "feed_answer", value=0), "assets[1].feed_answer", "must be > 0"),
    ("feed decimals 40", setter("assets", 0, "feed_decimals", value=40), "assets[0].feed_decimals", "must be ≤ 30"),
    ("token decimals 99", setter("assets", 2, "decimals", value=99), "assets[2].decimals", "must be ≤ 36"),
    ("duplicate symbol", setter("assets", 2, "symbol", value="WETH"), "assets[2].symbol", "duplicate symbol 'WETH'"),
    ("GLP as an asset", setter("assets", 0, "symbol", value="GLP"), "assets[0].symbol", "names the GLP token"),
    ("digit string", setter("assets", 1, "pool_amount", value="1000"), "assets[1].pool_amount",
     "expected an integer, got str"),
    ("float", setter("glp", "supply", value=1e24), "glp.supply", "expected an integer, got float"),
    ("gmx min above max", setter("assets", 1, "gmx_min_price", value=10**40), "assets[1].gmx_min_price",
     "must not exceed gmx_max_price"),
    ("LT above 100%", setter("assets", 0, "liquidation_threshold_bps", value=10_001),
     "assets[0].liquidation_threshold_bps", "must be ≤ 10000 bps"),
    ("fee above 100%", setter("glp", "mint_burn_fee_bps", value=20_000), "glp.mint_burn_fee_bps", "must be ≤ 10000"),
    ("GLP priced at 0", setter("glp", "aum_min", value=0), "glp.aum_min", "must be > 0 while glp.supply > 0"),
    ("aum min above max", setter("glp", "aum_max", value=1), "glp.aum_min", "must not exceed aum_max 1"),
    ("no assets", setter("assets", value=[]), "assets", "must list at least one asset"),
    ("duplicate vault", duplicate_book, "books[3].vault_id", "duplicate vault id 1 (also books[1])"),
    ("withdrawal above shares", more_withdrawn_than_shares, "books[2].pending_withdrawal_shares",
     "must not exceed total_shares"),
    ("negative", setter("books", 0, "glp", value=-1), "books[0].glp", "must not be negative"),
    ("memory digit string", setter("memory", "marked_at", value="17"), "memory.marked_at", "expected an integer"),
]


@pytest.mark.parametrize(("name", "mutate", "field", "reason"), CASES, ids=[c[0] for c in CASES])
def test_malformed_values_name_the_path_in_process(name: str, mutate: Mutation, field: str, reason: str) -> None:
    data = document()
    snapshot_from_json_dict(json.loads(json.dumps(data)))  # the unmutated document is valid
    mutate(data)
    with pytest.raises(InputError) as info:
        snapshot_from_json_dict(data)
    assert info.value.field == field
    assert reason in info.value.reason
    assert str(info.value).startswith(f"{field}: ")


def plan_cli(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "keeper.cli", "plan", "--snapshot", str(path)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("name", "mutate", "field", "reason"),
                         [c for c in CASES if c[0] in {"zero feed answer", "feed decimals 40", "digit string",
                                                       "duplicate symbol", "withdrawal above shares"}],
                         ids=lambda c: c if isinstance(c, str) else "")
def test_keeper_plan_exits_2_naming_the_path(tmp_path: Path, name: str, mutate: Mutation, field: str,
                                             reason: str) -> None:
    data = document()
    mutate(data)
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(data))
    out = plan_cli(path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: ") and f"{field}: " in out.stderr and reason in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert out.stdout == ""


def test_keeper_plan_accepts_the_valid_document(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(document()))
    out = plan_cli(path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("block 100: ")


def _int_paths(node: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _int_paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _int_paths(value, (*path, i))
    elif isinstance(node, int) and not isinstance(node, bool):
        yield path


BASE = document()
PATHS = sorted(_int_paths(BASE), key=str)
EDGES = [0, 1, -1, 7, 31, 37, 10_000, 10_001, 10**18, 10**40, -(10**40), 2**255, 2**256 - 1, NOW + 10**6]
RULES: list[dict[int, Rules]] = [{}, {0: Rules(drift_policy="bands"), 1: Rules(drift_policy="bands",
                                                                             notional_cap_usd=1)}]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), st.sampled_from(EDGES)), min_size=1, max_size=4),
       st.sampled_from(RULES))
def test_anything_the_validation_accepts_can_be_decided(edits: list[tuple[tuple[str | int, ...], int]],
                                                        rules: dict[int, Rules]) -> None:
    """Found so far: a reserve over its borrow cap (room < 0) divided 0 by 0; a uint256-sized drift overflowed
    the display precision."""
    data = json.loads(json.dumps(BASE))
    for path, value in edits:
        setter(*path, value=value)(data)
    try:
        snap = snapshot_from_json_dict(data)
    except InputError:
        return
    decide(snap, rules)  # no ZeroDivisionError, IndexError, decimal error…: the core's preconditions hold


def test_withdrawal_shares_at_total_are_accepted() -> None:
    b = book(0, 0, cash=(10**12, 0, 0), withdraw_shares=10**24, shares=10**24)
    data = json.loads(json.dumps(market(books=(b,)).to_json_dict()))
    snap = snapshot_from_json_dict(data)
    d = decide(snap, {})
    assert d.plan is not None and d.plan.vault(0).process
