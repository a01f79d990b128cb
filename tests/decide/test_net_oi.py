"""Net-OI trigger: per-(vault, asset) timers, the drift floor, restarts through JSON and the store, migration
from the account-level timer, and a property over random OI paths (docs/decision.md §3 "Net-OI timers")."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keeper.decide import Rules, decide
from keeper.decide import triggers as t
from keeper.decide.decision import Decision
from keeper.decide.exposure import net_oi
from keeper.snapshot import Memory, Snapshot, memory_from_json_dict, snapshot_from_json_dict
from keeper.store import open_store
from tests.decide.builders import NOW, apply_plan, funded, market, with_account

H = 3600
WEI = 10**18
WETH_POOL = 10_000 * WEI  # builders.market(): the floor at 1000 bps is 1000 WETH


def with_weth(snap: Snapshot, **changes: int) -> Snapshot:
    return replace(snap, assets=(snap.assets[0], replace(snap.assets[1], **changes), snap.assets[2]))


def restart(snap: Snapshot, mem: Memory, *, now: int) -> Snapshot:
    """The next snapshot as a restarted keeper sees it: memory only through its JSON form."""
    data = json.loads(json.dumps(replace(snap, block_timestamp=now, memory=mem).to_json_dict()))
    return snapshot_from_json_dict(data)


def fitted(snap: Snapshot | None = None) -> tuple[Snapshot, Memory]:
    snap = snap if snap is not None else market(books=funded())
    d = decide(snap, {})
    assert d.plan is not None
    return apply_plan(snap, d.plan), d.memory_after_execution


def oi_result(d: Decision, scope: str) -> t.TriggerResult:
    return next(r for r in d.triggers if r.trigger == "net_oi" and r.scope == scope)


def refit_by_oi(d: Decision) -> set[int]:
    """The vaults the plan refits because of their own net-OI timer."""
    if d.plan is None:
        return set()
    return {vp.vault_id for vp in d.plan.vaults if any(r.startswith("net OI hedge drifted") for r in vp.reasons)}


# --- the drift measure ---------------------------------------------------------------------------------------------
def test_oi_drift_ratio_with_a_floor() -> None:
    assert t.oi_drift_ratio(Fraction(1050), 1000, 100) == Fraction(5, 100)  # |applied| above the floor
    assert t.oi_drift_ratio(Fraction(50), 0, 1000) == Fraction(5, 100)  # applied 0: the floor is the base
    assert t.oi_drift_ratio(Fraction(-40), 10, 1000) == Fraction(5, 100)
    assert t.oi_drift_ratio(Fraction(1), 0, 0) is None  # no floor (a pool of 0): infinite as before
    assert t.oi_drift_ratio(Fraction(0), 0, 0) == 0


@pytest.mark.parametrize(("moved", "drifting"), [(49, False), (50, True), (51, True)])
def test_near_zero_oi_applied_uses_the_floor_below_at_above(moved: int, drifting: bool) -> None:
    """OI applied 0 WETH: without the floor any move is an infinite drift; with 10% of the 10,000 WETH pool as
    the base, 49 WETH is 490 bps (nothing), 50 WETH exactly 500 bps (the timer starts), 51 WETH 510 bps."""
    base = market(books=funded())
    zero = with_weth(base, reserved_amount=1000 * WEI)  # longs 1000 WETH = shorts $3M / $3000: OI 0
    assert net_oi(zero.assets[1]) == 0
    snap, mem = fitted(zero)
    assert dict(mem.oi_applied)["WETH"] == 0
    moved_snap = with_weth(snap, reserved_amount=(1000 + moved) * WEI)
    t0 = NOW + 100
    d = decide(restart(moved_snap, mem, now=t0), {})
    for v in (0, 1, 2):
        r = oi_result(d, f"vault:{v}:WETH")
        assert r.value == str(moved * 10) and r.threshold == "500"
        assert (r.since == t0) is drifting and not r.fired
    d = decide(restart(moved_snap, d.memory, now=t0 + 2 * H), {})
    assert refit_by_oi(d) == ({0, 1, 2} if drifting else set())
    summary = oi_result(d, "asset:WETH")
    assert (summary.fired, summary.since) == ((True, t0) if drifting else (False, None))
    # a smaller floor makes the same move a larger drift: 49 WETH over a 500 WETH floor is 980 bps
    d = decide(restart(moved_snap, mem, now=t0), {v: Rules(oi_drift_floor_bps=500) for v in (0, 1, 2)})
    assert oi_result(d, "vault:0:WETH").value == str(moved * 20)


def test_the_plan_reasons_name_the_vaults_not_the_asset_summary() -> None:
    snap, mem = fitted()
    swung = with_weth(snap, reserved_amount=snap.assets[1].reserved_amount + 600 * WEI)
    d = decide(restart(swung, mem, now=NOW + 100), {})
    d = decide(restart(swung, d.memory, now=NOW + 100 + 2 * H), {})
    assert d.plan is not None
    oi_reasons = [r for r in d.plan.reasons if r.startswith("net_oi")]
    assert sorted(r.split("]")[0] for r in oi_reasons) == [f"net_oi[vault:{v}:WETH" for v in (0, 1, 2)]
    assert oi_result(d, "asset:WETH").fired  # still in the triggers (the OI metrics read it)


# --- per-vault timers ----------------------------------------------------------------------------------------------
def test_a_halted_vault_keeps_drifting_and_the_others_wait_a_fresh_hold() -> None:
    """Vault 2 is halted by its band: its timer keeps firing, but it never makes vaults 0 and 1 trade; after their
    own refit they wait a fresh 2h hold on their own drift from the OI they were refit to."""
    snap, mem = fitted()
    b2 = snap.books[2]
    halted = with_account(replace(snap, books=(*snap.books[:2], replace(b2, debt=(b2.debt[0], b2.debt[1] // 2, 0)))))
    rules = {2: Rules(drift_policy="bands")}
    oi0 = halted.assets[1].reserved_amount
    swung = with_weth(halted, reserved_amount=oi0 + 600 * WEI)  # OI 1000 → 1600 WETH
    t0 = NOW + 100
    d = decide(restart(swung, mem, now=t0), rules)
    assert any(h.scope == "vault:2:WETH" for h in d.halts)
    d = decide(restart(swung, d.memory, now=t0 + 2 * H), rules)
    assert refit_by_oi(d) == {0, 1} and oi_result(d, "vault:2:WETH").fired
    assert d.plan is not None and 2 not in {vp.vault_id for vp in d.plan.vaults}
    after = d.memory_after_execution
    assert {(v, s) for v, s, _ in after.oi_drift_since_vault} == {(2, "WETH")}  # 0 and 1 answered
    assert dict(after.oi_drift_since)["WETH"] == t0  # the earliest running timer: vault 2's
    settled = apply_plan(swung, d.plan)
    # same OI: vault 2 alone fires; nobody trades
    d = decide(restart(settled, after, now=t0 + 2 * H + 60), rules)
    assert oi_result(d, "asset:WETH").fired and oi_result(d, "asset:WETH").since == t0
    assert refit_by_oi(d) == set() and d.plan is None
    # the OI moves on by 100 WETH (6.25% of the 1600 vaults 0 and 1 carry): their timers start afresh
    t1 = t0 + 3 * H
    further = with_weth(settled, reserved_amount=oi0 + 700 * WEI)
    d = decide(restart(further, d.memory, now=t1), rules)
    assert [oi_result(d, f"vault:{v}:WETH").since for v in (0, 1, 2)] == [t1, t1, t0]
    for at in (t1 + H, t1 + 2 * H - 1):
        assert refit_by_oi(d) == set() and d.plan is None
        d = decide(restart(further, d.memory, now=at), rules)
    assert refit_by_oi(d) == set() and d.plan is None
    d = decide(restart(further, d.memory, now=t1 + 2 * H), rules)
    assert refit_by_oi(d) == {0, 1}


def test_each_vault_uses_its_own_oi_rules() -> None:
    snap, mem = fitted()
    swung = with_weth(snap, reserved_amount=snap.assets[1].reserved_amount + 60 * WEI)  # 6%
    rules = {0: Rules(oi_drift_seconds=H), 1: Rules(oi_drift_bps=700)}
    t0 = NOW + 100
    d = decide(restart(swung, mem, now=t0), rules)
    assert oi_result(d, "vault:1:WETH").since is None  # 6% < 7%: no timer for vault 1
    d = decide(restart(swung, d.memory, now=t0 + H), rules)
    assert refit_by_oi(d) == {0}  # vault 0's 1h hold; vault 2 (default 2h) waits
    d = decide(restart(swung, d.memory, now=t0 + 2 * H), rules)
    assert refit_by_oi(d) == {0, 2}  # d.memory: vault 0's refit was not executed, so it is still due


# --- restarts and migration ----------------------------------------------------------------------------------------
def test_vault_timers_survive_a_restart_through_the_store(tmp_path: Path) -> None:
    """The daemon persists Memory as JSON in its store (asdict → put_state → memory_from_json_dict): the per-vault
    timers come back unchanged, so the hold is neither reset nor faked."""
    snap, mem = fitted()
    swung = with_weth(snap, reserved_amount=snap.assets[1].reserved_amount + 60 * WEI)
    t0 = NOW + 100
    d = decide(restart(swung, mem, now=t0), {})
    assert {(v, s, x) for v, s, x in d.memory.oi_drift_since_vault} == {(v, "WETH", t0) for v in (0, 1, 2)}
    store = open_store(tmp_path / "journal.sqlite")
    store.put_state("memory", json.dumps(asdict(d.memory), sort_keys=True))
    stored = store.get_state("memory")
    assert stored is not None
    back = memory_from_json_dict(json.loads(stored))
    assert back == d.memory
    d = decide(restart(swung, back, now=t0 + 2 * H - 1), {})
    assert refit_by_oi(d) == set()
    d = decide(restart(swung, d.memory, now=t0 + 2 * H), {})
    assert refit_by_oi(d) == {0, 1, 2} and oi_result(d, "vault:0:WETH").since == t0


def test_an_old_account_level_timer_seeds_every_vault_timer() -> None:
    """Memory written before per-vault timers: `oi_drift_since[WETH]` only. Every vault's timer starts from it;
    vault 1, which was already refit to the OI seen now, drops it at once."""
    snap, mem = fitted()
    swung = with_weth(snap, reserved_amount=snap.assets[1].reserved_amount + 600 * WEI)
    t0 = NOW + 100
    old = replace(mem, oi_drift_since=(("WETH", t0),), oi_drift_since_vault=(),
                  oi_applied_vault=((1, "WETH", 1600 * WEI),))
    d = decide(restart(swung, old, now=t0 + 2 * H), {})
    assert refit_by_oi(d) == {0, 2}
    assert [oi_result(d, f"vault:{v}:WETH").since for v in (0, 1, 2)] == [t0, None, t0]
    assert d.memory.oi_drift_since_vault == ((0, "WETH", t0), (2, "WETH", t0))
    # one second earlier the seeded timers have not held 2h: nothing fires (not faked)
    d = decide(restart(swung, old, now=t0 + 2 * H - 1), {})
    assert refit_by_oi(d) == set()


# --- property ------------------------------------------------------------------------------------------------------
STEPS = st.lists(st.tuples(st.integers(60, 3 * H), st.integers(-150, 150)), min_size=1, max_size=10)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=st.integers(-1100, 300), steps=STEPS, hold=st.sampled_from([H, 2 * H]), executes=st.booleans())
def test_a_vault_is_refit_by_net_oi_only_after_its_own_drift_held(start: int, steps: list[tuple[int, int]],
                                                                   hold: int, executes: bool) -> None:
    """For any path of WETH OI observations: vault v's net-OI timer fires (and the plan refits v for it) iff its
    own drift — |OI − OI it was last fitted to| / max(|that|, 10% of the pool) — has been ≥ 5% at every
    observation since some tick at least `hold` seconds ago. Recomputed here independently of the keeper. The
    books are fitted at a random OI (1000 + start WETH: near zero and negative included, where the floor counts)."""
    initial = market(books=funded())
    snap, mem = fitted(with_weth(initial, reserved_amount=initial.assets[1].reserved_amount + start * WEI))
    rules = {v: Rules(oi_drift_seconds=hold) for v in (0, 1, 2)}
    base = snap.assets[1].reserved_amount
    applied = {v: math.floor(net_oi(snap.assets[1])) for v in (0, 1, 2)}
    streak: dict[int, int | None] = {v: None for v in (0, 1, 2)}
    now, oi_delta = NOW, 0
    for dt, move in steps:
        now += dt
        oi_delta = max(oi_delta + move, -(base // WEI))  # the longs' reserve cannot go below 0
        obs = with_weth(snap, reserved_amount=base + oi_delta * WEI)
        oi = net_oi(obs.assets[1])
        d = decide(restart(obs, mem, now=now), rules)
        for v in (0, 1, 2):
            drift = abs(oi - applied[v]) / max(abs(applied[v]), Fraction(WETH_POOL, 10))
            streak[v] = (streak[v] if streak[v] is not None else now) if drift * 10_000 >= 500 else None
            s = streak[v]
            held = s is not None and now - s >= hold
            assert oi_result(d, f"vault:{v}:WETH").fired is held
            assert (v in refit_by_oi(d)) is held
        if executes and d.plan is not None:
            snap = apply_plan(obs, d.plan)  # the books move; the OI path continues from `base`
            mem = d.memory_after_execution
            for v in refit_by_oi(d):
                applied[v], streak[v] = math.floor(oi), None
        else:
            mem = d.memory


def test_the_floor_is_configurable_like_every_rule(tmp_path: Path) -> None:
    """`oi_drift_floor_bps` in `default_rules` or a vault's `rules` reaches Rules (keeper.daemon.app.rules_by_vault);
    a negative value is named."""
    from keeper.config import load_config, render_toml
    from keeper.daemon.app import rules_by_vault
    from keeper.errors import ConfigError

    addr = "0x" + "11" * 20
    base: dict[str, object] = {
        "chain": {"chain_id": 31337, "rpc_urls": ["http://127.0.0.1:8545"]},
        "contracts": {k: addr for k in ("vault_manager", "multicall", "gmx_vault", "glp_manager", "reward_router",
                                        "pool", "glp")},
        "default_rules": {"oi_drift_floor_bps": 2_000},
        "vaults": [{"id": 1, "rules": {"oi_drift_floor_bps": 0}}],
    }
    path = tmp_path / "keeper.toml"
    path.write_text(render_toml(base))
    rules = rules_by_vault(load_config(path), [0, 1])
    assert (rules[0].oi_drift_floor_bps, rules[1].oi_drift_floor_bps) == (2_000, 0)
    assert Rules().oi_drift_floor_bps == 1_000
    path.write_text(render_toml({**base, "vaults": [{"id": 1, "rules": {"oi_drift_floor_bps": -1}}]}))
    with pytest.raises(ConfigError, match="oi_drift_floor_bps"):
        rules_by_vault(load_config(path), [0, 1])
