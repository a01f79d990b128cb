"""Snapshot JSON form: exact round trip of big integers, and errors that name the field and reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from keeper.errors import InputError
from keeper.snapshot import snapshot_from_json_dict
from tests.factories import book, snapshot


def as_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(snapshot((book(0, 0, 5 * 10**30), book(1, 1))).to_json_dict()))
    return data


def test_round_trip_is_exact_for_uint256_values() -> None:
    snap = snapshot((book(0, 0, 2**255 + 1),))
    again = snapshot_from_json_dict(json.loads(json.dumps(snap.to_json_dict())))
    assert again == snap
    assert again.books[0].glp == 2**255 + 1


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda d: d["books"][1].__setitem__("glp", -5), "books[1].glp", "must not be negative"),
        (lambda d: d["books"][0].__setitem__("glp", 1.5), "books[0].glp", "expected an integer"),
        (lambda d: d["books"][0].pop("debt"), "books[0].debt", "missing"),
        (lambda d: d["books"][0].__setitem__("cash", [1, 2]), "books[0].cash", "has 2 entries, expected 3"),
        (lambda d: d["glp"].__setitem__("supply", "lots"), "glp.supply", "expected an integer"),
        (lambda d: d["assets"][2].__setitem__("is_stable", "no"), "assets[2].is_stable", "expected true or false"),
        (lambda d: d.__setitem__("extra", 1), "extra", "unknown field"),
        (lambda d: d["books"][0].__setitem__("denomination", 7), "books[0].denomination", "out of range"),
        (lambda d: d.__setitem__("version", 99), "version", "unsupported snapshot version"),
        (lambda d: d["lending"].__setitem__("health_factor", 2**256), "lending.health_factor", "exceeds uint256"),
    ],
)
def test_malformed_snapshot_names_field(mutate: Any, field: str, reason: str) -> None:
    data = as_json()
    mutate(data)
    with pytest.raises(InputError) as info:
        snapshot_from_json_dict(data)
    assert info.value.field == field
    assert reason in info.value.reason


def test_not_an_object() -> None:
    with pytest.raises(InputError, match="snapshot: expected an object"):
        snapshot_from_json_dict([1, 2])
