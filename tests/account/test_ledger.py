"""The rebalance fee ledger: worked example + a random-operation state machine against an exact model.

Worked example (S = ACC_SCALE = 1e36), pool "vault:1", holders alice and bob:
  alice deposits 100.                          total 100
  rebalance 1 costs 10 → acc[1] = 10·S/100 = 0.1·S
  bob deposits 300 (settled_at = 1: not charged for rebalance 1).   total 400
  rebalance 2 costs 8  → acc[2] = 0.1·S + 8·S/400 = 0.12·S
  alice withdraws 50 → settles: 100 × (0.12 − 0) = 12 → charged 12 (10 from #1, 2 from #2)
  rebalance 3 costs 7  → 7·S/350 = 0.02·S → acc[3] = 0.14·S
  bob settles: 300 × (0.14 − 0.10) = 12 (6 from #2, 6 from #3)
  alice settles: 50 × (0.14 − 0.12) = 1
  total 12 + 12 + 1 = 25 = 10 + 8 + 7 ✓; carol joining now and settling pays 0.
"""

from __future__ import annotations

import json
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.account import (
    ACC_SCALE,
    Ledger,
    change_position,
    check_invariant,
    ledger_from_json_dict,
    ledger_to_json_dict,
    record_rebalance,
    settle,
    settle_all,
)

P = "vault:1"


def test_worked_example() -> None:
    led = Ledger()
    led, c = change_position(led, P, "alice", 100)
    assert c == 0
    led, rid = record_rebalance(led, P, 10)
    assert rid == 1 and led.pool(P).acc[1] == ACC_SCALE // 10
    led, c = change_position(led, P, "bob", 300)
    assert c == 0
    led, _ = record_rebalance(led, P, 8)
    led, c = change_position(led, P, "alice", -50)
    assert c == 12
    led, _ = record_rebalance(led, P, 7)
    led, c = settle(led, P, "bob")
    assert c == 12
    led, c = settle(led, P, "bob")
    assert c == 0  # settled holders are not charged again
    led, c = settle(led, P, "alice")
    assert c == 1
    led, c = change_position(led, P, "carol", 1000)
    led, c2 = settle(led, P, "carol")
    assert c == c2 == 0
    pool = led.pool(P)
    assert pool.total_charged == pool.total_cost == 25
    check_invariant(pool)
    assert ledger_from_json_dict(json.loads(json.dumps(ledger_to_json_dict(led)))) == led


def test_rounding_dust_is_charged_by_settle_all() -> None:
    led = Ledger()
    for h in ("a", "b", "c"):
        led, _ = change_position(led, P, h, 1)
    led, _ = record_rebalance(led, P, 10)  # 10/3 each
    led, charges = settle_all(led, P)
    assert charges == {"a": 4, "b": 3, "c": 3}  # floors 3,3,3; one unit to the largest residue, lowest id
    assert led.pool(P).total_charged == 10


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("pos"), st.sampled_from("abcde"), st.integers(-(10**20), 10**20)),
        st.tuples(st.just("cost"), st.just(""), st.integers(0, 10**18)),
        st.tuples(st.just("settle"), st.sampled_from("abcde"), st.just(0)),
        st.tuples(st.just("all"), st.just(""), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_ledger_matches_exact_model(ops: list[tuple[str, str, int]]) -> None:
    led = Ledger()
    pos: dict[str, int] = {}
    exact: dict[str, Fraction] = {}  # exact cost each holder bears
    charged: dict[str, int] = {}
    held_at_cost: dict[str, bool] = {}
    cost_total = 0
    for kind, h, x in ops:
        if kind == "pos":
            delta = max(x, -pos.get(h, 0))
            led, c = change_position(led, P, h, delta)
            charged[h] = charged.get(h, 0) + c
            pos[h] = pos.get(h, 0) + delta
        elif kind == "cost":
            total = sum(pos.values())
            if total == 0:
                continue
            led, _ = record_rebalance(led, P, x)
            cost_total += x
            for k, p in pos.items():
                exact[k] = exact.get(k, Fraction(0)) + Fraction(x * p, total)
                held_at_cost[k] = held_at_cost.get(k, False) or (p > 0 and x > 0)
        elif kind == "settle":
            led, c = settle(led, P, h)
            charged[h] = charged.get(h, 0) + c
            led, again = settle(led, P, h)
            assert again == 0  # a settled holder is not charged again
        else:
            led, cs = settle_all(led, P)
            for k, c in cs.items():
                charged[k] = charged.get(k, 0) + c
            assert led.pool(P).total_charged == cost_total  # conserved exactly after settle_all
        pool = led.pool(P)
        check_invariant(pool)
        assert ledger_from_json_dict(json.loads(json.dumps(ledger_to_json_dict(led)))) == led
        for k, c in charged.items():
            assert c >= 0
            assert c <= exact.get(k, 0) + 1  # never more than its exact share (+1 dust unit)
            if not held_at_cost.get(k):
                assert c == 0  # never charged for rebalances it did not hold through
    led, cs = settle_all(led, P)
    for k, c in cs.items():
        charged[k] = charged.get(k, 0) + c
    assert sum(charged.values()) == cost_total
    for k, c in charged.items():
        assert abs(c - exact.get(k, 0)) < 2
