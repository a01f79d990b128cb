"""decide() end to end on worked scenarios: the fit's numbers, each trigger through the entry point, the OI
timer across a restart, halts, the cost gate, buffers, interest and memory."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

from keeper.decide import Rules, decide
from keeper.decide.exposure import book_equity, exposure_per_glp, health_factor, holdings_exposure, marks
from keeper.decide.plan import Plan
from keeper.snapshot import Memory, Snapshot, snapshot_from_json_dict
from tests.decide.builders import NOW, apply_plan, book, funded, market, reprice, with_account

H = 3600


def fitted() -> tuple[Snapshot, Memory]:
    snap = market(books=funded())
    d = decide(snap, {})
    assert d.plan is not None
    return apply_plan(snap, d.plan), d.memory_after_execution


def restart(snap: Snapshot, mem: Memory, *, now: int) -> Snapshot:
    """The next snapshot as a restarted keeper sees it: memory only through its JSON form."""
    data = json.loads(json.dumps(replace(snap, block_timestamp=now, memory=mem).to_json_dict()))
    return snapshot_from_json_dict(data)


def test_worked_fit_of_the_usd_vault() -> None:
    snap = market(books=funded())
    d = decide(snap, {})
    assert d.plan is not None
    v0 = d.plan.vault(0)
    # e_WETH = (10,000 − 1,000 OI) / 110M GLP, e_WBTC = (500 − 10) / 110M; P = $1; H/LT = 1.5/0.8
    s = Fraction(9000 * 3000 + 490 * 60_000, 110_000_000)  # USD of hedged exposure per GLP
    g = Fraction(950_000) / (1 - s + Fraction(15, 8) * s)  # equity 1M − 5% buffer
    assert v0.glp_target == int(g * 10**18)
    assert v0.glp_target // 10**18 == 655_789
    assert v0.debt_target[1] == v0.glp_target * 9000 // 110_000_000  # WETH wei, floor
    assert v0.debt_target[1] // 10**15 == 53_655  # 53.655 WETH
    assert v0.debt_target[2] == v0.glp_target * 490 * 10**8 // (110_000_000 * 10**18)
    assert v0.cash_target == (50_000 * 10**6, 0, 0)  # buffer reset to 5% of equity
    assert v0.collateral_target[0] // 10**6 == 630_451  # 1.875 × debt value, rounded up
    assert v0.debt == v0.debt_target and v0.interest == (0, 0, 0)
    assert d.plan.flags == 0
    assert any("delta_drift[vault:0:WETH] FIRED" in r for r in d.plan.reasons)


def test_after_the_plan_each_vault_is_neutral_at_target_hf_and_nothing_fires() -> None:
    snap, mem = fitted()
    m = marks(snap)
    for b in snap.books:
        e = exposure_per_glp(snap, m, 10_000)
        x = holdings_exposure(b.glp, b.cash, b.collateral, b.debt, e)
        for a in range(3):
            if a != b.denomination:
                assert 0 <= x[a] < 1  # under-hedged by less than one smallest unit
        eq = book_equity(b, m)
        # exposure to the denomination = equity less the sub-unit residuals of the others (< one unit each)
        assert 0 <= eq - x[b.denomination] * m.price[b.denomination] < sum(m.price)
        hf = health_factor(b.collateral, b.debt, snap, m)
        assert hf is not None and Fraction(3, 2) <= hf < Fraction(3, 2) + Fraction(1, 10**9)
    d = decide(snap, {}, mem)
    assert d.plan is None
    assert not d.fired
    assert d.memory == d.memory_after_execution


def test_oi_timer_survives_a_restart_and_fires_after_2h() -> None:
    snap, mem = fitted()
    weth = snap.assets[1]
    moved = replace(snap, assets=(snap.assets[0], replace(weth, reserved_amount=weth.reserved_amount + 50 * 10**18),
                                  snap.assets[2]))  # OI 1000 → 1050 WETH: exactly 5% drift
    t0 = NOW + 100
    d = decide(restart(moved, mem, now=t0), {})
    oi = next(r for r in d.triggers if r.trigger == "net_oi" and r.scope == "asset:WETH")
    assert (oi.fired, oi.value, oi.since) == (False, "500", t0)
    assert d.plan is None
    # restart 1h later: the timer is neither reset nor faked
    d = decide(restart(moved, d.memory, now=t0 + H), {})
    oi = next(r for r in d.triggers if r.scope == "asset:WETH")
    assert (oi.fired, oi.since) == (False, t0)
    d = decide(restart(moved, d.memory, now=t0 + 2 * H - 1), {})
    assert d.plan is None
    d = decide(restart(moved, d.memory, now=t0 + 2 * H), {})
    oi = next(r for r in d.triggers if r.scope == "asset:WETH")
    assert (oi.fired, oi.since) == (True, t0)
    assert d.plan is not None and {v.vault_id for v in d.plan.vaults} == {0, 1, 2}
    # once executed, the applied OI is the new one and the timer is gone
    assert dict(d.memory_after_execution.oi_applied)["WETH"] == 1050 * 10**18
    assert "WETH" not in dict(d.memory_after_execution.oi_drift_since)
    assert dict(d.memory.oi_drift_since)["WETH"] == t0  # not executed yet: still running


def test_net_oi_refit_is_not_held_back_by_the_cost_gate() -> None:
    """The OI refit is account-wide: with gas so expensive that the gate would defer every vault, the fired
    OI trigger still refits all of them (otherwise it refires every tick while some vaults trade again)."""
    snap, mem = fitted()
    weth = snap.assets[1]
    moved = replace(snap, assets=(snap.assets[0], replace(weth, reserved_amount=weth.reserved_amount + 60 * 10**18),
                                  snap.assets[2]))
    t0 = NOW + 100
    d = decide(restart(moved, mem, now=t0), {}, gas_price_wei=10**13)
    d = decide(restart(moved, d.memory, now=t0 + 2 * H), {}, gas_price_wei=10**13)
    assert any(r.trigger == "net_oi" and r.fired for r in d.triggers)
    assert not any(r.trigger == "cost_gate" and r.fired for r in d.triggers)
    assert d.plan is not None and {v.vault_id for v in d.plan.vaults} == {0, 1, 2}
    assert dict(d.memory_after_execution.oi_applied)["WETH"] == 1060 * 10**18


def test_oi_timer_resets_when_the_drift_falls_back() -> None:
    snap, mem = fitted()
    weth = snap.assets[1]
    drifted = replace(snap, assets=(snap.assets[0], replace(weth, reserved_amount=weth.reserved_amount + 60 * 10**18),
                                    snap.assets[2]))
    d = decide(restart(drifted, mem, now=NOW + 10), {})
    assert dict(d.memory.oi_drift_since)["WETH"] == NOW + 10
    back = replace(snap, assets=(snap.assets[0], replace(weth, reserved_amount=weth.reserved_amount + 49 * 10**18),
                                 snap.assets[2]))  # 4.9%: below
    d = decide(restart(back, d.memory, now=NOW + 3 * H), {})
    assert "WETH" not in dict(d.memory.oi_drift_since)
    d = decide(restart(drifted, d.memory, now=NOW + 4 * H), {})
    assert dict(d.memory.oi_drift_since)["WETH"] == NOW + 4 * H
    assert d.plan is None


def test_health_factor_plan_restores_target() -> None:
    snap = market(books=funded()[:1])
    d = decide(snap, {})
    assert d.plan is not None
    snap, mem = apply_plan(snap, d.plan), d.memory_after_execution
    hot = reprice(snap, {"WETH": 4200, "WBTC": 84_000})  # +40%: the USD vault's debts grow, HF 1.5 → ~1.07
    assert hot.lending.health_factor < 12 * 10**17
    d = decide(hot, {}, mem)
    hf = next(r for r in d.triggers if r.trigger == "health_factor")
    assert hf.fired
    assert d.plan is not None and len(d.plan.vaults) == 1
    after = apply_plan(hot, d.plan)
    assert after.lending.health_factor >= 15 * 10**17
    m = marks(after)
    for b in after.books:
        v = health_factor(b.collateral, b.debt, after, m)
        assert v is not None and v >= Fraction(3, 2)


def test_hedge_pnl_profit_flag_and_settlement() -> None:
    snap, mem = fitted()
    d = decide(restart(snap, mem, now=NOW + 60), {})  # marks recorded
    cheap = restart(reprice(snap, {"WETH": 2100, "WBTC": 42_000}), d.memory, now=NOW + 120)  # −30%
    d = decide(cheap, {})
    pnl = {r.scope: r for r in d.triggers if r.trigger == "hedge_pnl"}
    assert pnl["vault:0"].fired and "profit" in pnl["vault:0"].detail
    # USD vault: short 53.655 WETH and 2.9212 WBTC, both −30%: PnL ≈ 0.3 × $336k ≈ $100.9k ≈ 10% of equity
    assert 1000 < int(float(pnl["vault:0"].value)) < 1020
    assert d.plan is not None and d.plan.profit
    assert d.plan.vault(0).glp > 0  # the profit (prices fell) is minted into GLP
    assert dict(d.memory_after_execution.hedge_pnl) == {}
    assert dict(d.memory.hedge_pnl)[0] > 0


def test_hedge_pnl_loss_is_covered_by_redeeming_glp() -> None:
    snap, mem = fitted()
    d = decide(restart(snap, mem, now=NOW + 60), {})
    dear = restart(reprice(snap, {"WETH": 3540, "WBTC": 70_800}), d.memory, now=NOW + 120)  # +18%
    d = decide(dear, {})
    pnl = next(r for r in d.triggers if r.trigger == "hedge_pnl" and r.scope == "vault:0")
    assert pnl.fired and "loss" in pnl.detail
    assert not any(r.trigger == "health_factor" and r.fired for r in d.triggers)  # a loss, not a margin call
    assert d.plan is not None and d.plan.profit
    assert d.plan.vault(0).glp < 0  # the loss is covered by redeeming GLP
    assert dict(d.memory.hedge_pnl)[0] < 0 and 0 not in dict(d.memory_after_execution.hedge_pnl)


def test_recurring_cycle_sets_all_flags_and_overrides_the_cost_gate() -> None:
    snap, mem = fitted()
    due = replace(snap, manager=replace(snap.manager, last_cycle_at=NOW - 48 * H))
    d = decide(due, {0: Rules(cost_gate_bps=0)}, mem)
    assert d.plan is not None
    assert (d.plan.harvest, d.plan.recurring, d.plan.profit, d.plan.flags) == (True, True, True, 7)
    assert not any(r.trigger == "cost_gate" and r.fired for r in d.triggers)


def test_cost_gate_defers_a_small_correction_with_expensive_gas() -> None:
    snap, mem = fitted()
    b = snap.books[0]
    drifted = with_account(replace(snap, books=(replace(b, debt=(0, b.debt[1] * 94 // 100, b.debt[2])),
                                                *snap.books[1:])))
    d = decide(drifted, {}, mem, gas_price_wei=10**9)
    assert d.plan is not None and [v.vault_id for v in d.plan.vaults] == [0]
    d = decide(drifted, {}, mem, gas_price_wei=10**13)  # 1.5M gas × 10,000 gwei × $3000 = $45,000
    gate = next(r for r in d.triggers if r.trigger == "cost_gate")
    assert gate.fired and gate.action == "defer"
    assert d.plan is None


def test_band_halt_blocks_the_vault_until_acknowledged() -> None:
    snap, mem = fitted()
    b = snap.books[0]
    moved = with_account(replace(snap, books=(replace(b, debt=(0, b.debt[1] // 2, b.debt[2])), *snap.books[1:])))
    rules = {0: Rules(drift_policy="bands")}
    d = decide(moved, rules, mem)
    halt = next(h for h in d.halts if h.scope == "vault:0:WETH")
    assert halt.action == "halt" and Decimal(halt.value) > 5000  # half the hedge of a (larger) target
    assert d.plan is None
    assert dict(d.memory.halts)["band:0:WETH"] == NOW
    # still beyond later: the halt keeps its start; an operator acknowledgement releases it
    later = replace(moved, block_timestamp=NOW + 60)
    d2 = decide(later, rules, d.memory)
    assert dict(d2.memory.halts)["band:0:WETH"] == NOW and d2.plan is None
    acked = replace(d2.memory, acks=(("band:0:WETH", NOW + 30),))
    d3 = decide(later, rules, acked)
    assert d3.plan is not None and d3.plan.vault(0).debt[1] > b.debt[1] // 2  # the hedge is restored
    assert dict(d3.memory_after_execution.halts) == {}


def test_band_inside_inner_does_nothing_and_between_trades() -> None:
    snap, mem = fitted()
    b = snap.books[0]
    rules = {0: Rules(drift_policy="bands", drift_bps=1)}  # fixed drift would fire at 1 bp; bands decide here
    for factor, action in ((98, "none"), (95, "hedge")):  # inner 2.5%, outer 10% (minimum bands)
        moved = with_account(replace(snap, books=(replace(b, debt=(0, b.debt[1] * factor // 100, b.debt[2])),
                                                  *snap.books[1:])))
        d = decide(moved, rules, mem)
        r = next(r for r in d.triggers if r.trigger == "band" and r.scope == "vault:0:WETH")
        assert r.action == action
        assert (d.plan is not None) is (action == "hedge")


def test_interest_is_assigned_pro_rata_to_debt() -> None:
    snap, mem = fitted()
    weth = snap.assets[1]
    owed = replace(snap, assets=(snap.assets[0], replace(weth, unassigned_debt=1001), snap.assets[2]),
                   manager=replace(snap.manager, last_cycle_at=NOW - 48 * H))
    d = decide(owed, {}, mem)
    assert d.plan is not None
    d0, d2 = owed.books[0].debt[1], owed.books[2].debt[1]
    i0, i2 = d.plan.vault(0).interest[1], d.plan.vault(2).interest[1]
    assert i0 + i2 == 1001
    assert i0 == 1001 * d0 // (d0 + d2) + (1 if d0 >= d2 else 0)
    assert d.plan.vault(1).interest[1] == 0  # the ETH vault has no WETH debt


def test_buffer_tops_up_a_small_equity_drop_without_resizing() -> None:
    """Invested equity falls from 95 to 90 (here ×10,000 USD): 5 come from the buffer, positions stay."""
    b = book(0, 0, glp=90_000 * 10**18, cash=(10_000 * 10**6, 0, 0))
    mem = Memory(invested=((0, 95_000 * 10**30),))
    snap = market(books=(b,), last_cycle_at=NOW - 48 * H, memory=mem)
    d = decide(snap, {0: Rules(buffer_min_bps=0, buffer_max_bps=2_000)})
    assert d.plan is not None
    assert d.plan.vault(0).cash[0] == -5_000 * 10**6
    assert "top-up" in " ".join(d.plan.vault(0).reasons)


def test_withdrawals_beyond_the_buffer_free_liquidity() -> None:
    snap, mem = fitted()
    b = snap.books[0]
    asking = with_account(replace(snap, books=(replace(b, pending_withdrawal_shares=b.total_shares // 5),
                                               *snap.books[1:])))
    d = decide(asking, {}, mem)
    assert d.plan is not None
    vp = d.plan.vault(0)
    assert vp.process and vp.glp < 0
    assert vp.cash_target[0] >= 200_000 * 10**6  # 20% of ~$1M owed, paid after the trades


def test_paused_manager_halts_everything() -> None:
    snap = market(books=funded())
    paused = replace(snap, manager=replace(snap.manager, paused=True))
    d = decide(paused, {})
    assert d.plan is None
    assert any(h.trigger == "paused" for h in d.halts)


def test_decide_does_not_mutate_and_is_deterministic() -> None:
    snap = market(books=funded())
    before = snap.to_json_dict()
    a, b = decide(snap, {}), decide(snap, {})
    assert a == b
    assert snap.to_json_dict() == before
    assert isinstance(a.plan, Plan)


def test_deposits_in_band_only_process_buffers() -> None:
    snap, mem = fitted()
    b = snap.books[0]
    depositing = with_account(replace(snap, books=(replace(b, pending_deposits=10_000 * 10**6), *snap.books[1:])))
    d = decide(depositing, {}, mem)
    q = next(r for r in d.triggers if r.trigger == "queue")
    assert (q.fired, q.action, q.value) == (True, "process", str(10_000 * 10**6))
    assert d.plan is not None
    vp = d.plan.vault(0)
    assert vp.process and vp.glp == 0 and not any(vp.debt) and not any(vp.cash) and not any(vp.collateral)
    assert dict(d.memory_after_execution.oi_applied) == dict(mem.oi_applied)  # no refit: OI applied unchanged


def with_weth(snap: Snapshot, **changes: int) -> Snapshot:
    return replace(snap, assets=(snap.assets[0], replace(snap.assets[1], **changes), snap.assets[2]))


def weth_debt_for(vp_glp_target: int, oi_weth: int) -> int:
    """The USD vault's WETH hedge for a GLP allocation when the OI hedge is `oi_weth` WETH (h = 1)."""
    return vp_glp_target * (10_000 - oi_weth) // 110_000_000  # e_WETH = (pool − OI) / supply, floor


def test_an_oi_swing_alone_waits_2h_then_refits_with_the_new_oi() -> None:
    """+60% WETH OI: the fit's weight hedge keeps the OI applied, so the delta-drift trigger does not fire and the
    swing waits for the net-OI timer; after 2h every vault refits with the new OI hedge."""
    snap, mem = fitted()
    swung = with_weth(snap, reserved_amount=snap.assets[1].reserved_amount + 600 * 10**18)  # OI 1000 → 1600 WETH
    t0 = NOW + 100
    d = decide(restart(swung, mem, now=t0), {})
    for at in (t0 + H, t0 + 2 * H - 1):
        assert d.plan is None
        assert not any(r.trigger == "delta_drift" and r.fired for r in d.triggers)
        d = decide(restart(swung, d.memory, now=at), {})
    assert d.plan is None
    d = decide(restart(swung, d.memory, now=t0 + 2 * H), {})
    assert any(r.trigger == "net_oi" and r.fired for r in d.triggers)
    assert d.plan is not None and {v.vault_id for v in d.plan.vaults} == {0, 1, 2}
    v0 = d.plan.vault(0)
    assert v0.debt_target[1] == weth_debt_for(v0.glp_target, 1600)  # the new OI hedge
    after = d.memory_after_execution
    assert dict(after.oi_applied)["WETH"] == 1600 * 10**18 and after.oi_applied_vault == ()
    settled = apply_plan(swung, d.plan)
    again = decide(restart(settled, after, now=t0 + 2 * H + 60), {})
    assert again.plan is None and not again.fired


def test_a_drift_refit_during_an_oi_swing_keeps_the_applied_oi() -> None:
    snap, mem = fitted()
    swung = with_weth(snap, reserved_amount=snap.assets[1].reserved_amount + 600 * 10**18)
    b = swung.books[0]
    drifted = with_account(replace(swung, books=(replace(b, debt=(0, b.debt[1] * 9 // 10, b.debt[2])),
                                                 *swung.books[1:])))
    d = decide(restart(drifted, mem, now=NOW + 100), {})
    assert d.plan is not None and [v.vault_id for v in d.plan.vaults] == [0]
    v0 = d.plan.vault(0)
    assert v0.debt_target[1] == weth_debt_for(v0.glp_target, 1000)  # the OI applied, not the 1600 seen now
    after = d.memory_after_execution
    assert dict(after.oi_applied)["WETH"] == 1000 * 10**18  # the swing is still pending
    assert dict(after.oi_drift_since)["WETH"] == NOW + 100


def test_a_vault_health_factor_refit_refreshes_its_oi_hedge_only() -> None:
    """Vault 0's own HF trigger refits it with the OI seen now; the other vaults keep the OI applied, and vault 0
    remembers its own (no refit back to the old OI next tick)."""
    snap, mem = fitted()
    swung = with_weth(snap, reserved_amount=snap.assets[1].reserved_amount + 600 * 10**18)
    b = swung.books[0]
    low = with_account(replace(swung, books=(replace(b, collateral=(b.collateral[0] * 7 // 10, 0, 0)),
                                             *swung.books[1:])))
    assert low.lending.health_factor >= 12 * 10**17  # only the vault's own HF is low
    d = decide(restart(low, mem, now=NOW + 100), {})
    assert d.plan is not None and [v.vault_id for v in d.plan.vaults] == [0]
    v0 = d.plan.vault(0)
    assert v0.debt_target[1] == weth_debt_for(v0.glp_target, 1600)
    after = d.memory_after_execution
    assert dict(after.oi_applied)["WETH"] == 1000 * 10**18
    assert (0, "WETH", 1600 * 10**18) in after.oi_applied_vault
    settled = apply_plan(low, d.plan)
    again = decide(restart(settled, after, now=NOW + 160), {})
    assert again.plan is None
    assert not any(r.trigger == "delta_drift" and r.fired for r in again.triggers)


def test_a_capped_rebalance_continues_next_tick_below_the_drift_threshold() -> None:
    snap, mem = fitted()
    b = snap.books[0]
    drifted = with_account(replace(snap, books=(replace(b, debt=(0, b.debt[1] * 94 // 100, b.debt[2])),
                                                *snap.books[1:])))
    rules = {0: Rules(notional_cap_usd=9_000)}
    d = decide(drifted, rules, mem)
    assert d.plan is not None and d.plan.vault(0).partial
    assert {row[:2] for row in d.memory_after_execution.partial_targets} == {(0, "GLP"), (0, "WETH"), (0, "WBTC")}
    step = apply_plan(drifted, d.plan)
    # the gap left is below 5%: only the continuation fires, and the gate (gas at $45,000) does not hold it back
    d = decide(step, rules, d.memory_after_execution, gas_price_wei=10**13)
    assert [r.trigger for r in d.fired] == ["partial"]
    assert not any(r.trigger == "cost_gate" for r in d.triggers)
    assert d.plan is not None and not d.plan.vault(0).partial
    done = apply_plan(step, d.plan)
    assert d.memory_after_execution.partial_targets == ()
    m = marks(done)
    x = holdings_exposure(done.books[0].glp, done.books[0].cash, done.books[0].collateral, done.books[0].debt,
                          exposure_per_glp(done, m, 10_000))
    assert 0 <= x[1] < 1 and 0 <= x[2] < 1  # neutral again
    final = decide(done, rules, d.memory_after_execution)
    assert final.plan is None and not final.fired


def test_bands_halt_an_invested_vault_with_no_hedge_and_let_a_new_vault_invest() -> None:
    snap, mem = fitted()
    b = snap.books[0]
    unhedged = with_account(replace(snap, books=(replace(b, debt=(0, 0, b.debt[2])), *snap.books[1:])))
    rules = {0: Rules(drift_policy="bands")}
    d = decide(unhedged, rules, mem)
    halt = next(h for h in d.halts if h.scope == "vault:0:WETH")
    assert halt.action == "halt" and halt.value == "10000"  # −100%: beyond any outer bound below 100%
    assert d.plan is None
    fresh = market(books=funded()[:1])  # nothing invested yet: the first fit is the drift rule's
    d = decide(fresh, rules)
    first = next(r for r in d.triggers if r.scope == "vault:0:WETH" and r.trigger in ("delta_drift", "band"))
    assert (first.trigger, first.fired) == ("delta_drift", True) and "first investment" in first.detail
    assert d.plan is not None and not d.halts


def test_a_band_vault_continues_a_capped_first_investment() -> None:
    """The gap a cap leaves is the keeper's own: a band vault continues instead of halting on it."""
    rules = {0: Rules(drift_policy="bands", notional_cap_usd=200_000)}
    snap = market(books=funded()[:1])
    d = decide(snap, rules)
    assert d.plan is not None and d.plan.vault(0).partial
    for k in range(1, 10):
        snap = replace(apply_plan(snap, d.plan), block_timestamp=NOW + k * 60)
        d = decide(snap, rules, d.memory_after_execution)
        assert not d.halts
        if d.plan is None:
            break
    assert d.plan is None and d.memory.partial_targets == ()
    assert 2 <= k <= 9


def test_a_profit_plan_settles_only_the_vaults_that_refit() -> None:
    """Vault 0's hedge PnL fires a profit plan; vault 1 only processes a deposit (queue-only): its PnL and invested
    equity stay; vault 2 is halted by its band: the OI applied does not advance for it."""
    snap, mem = fitted()
    b0, b1, b2 = snap.books
    books = (b0, replace(b1, pending_deposits=10**18), replace(b2, debt=(b2.debt[0], b2.debt[1] // 2, 0)))
    cheaper = reprice(with_account(replace(snap, books=books)), {"WETH": 2910, "WBTC": 58_200})  # −3%
    swung = with_weth(cheaper, reserved_amount=snap.assets[1].reserved_amount + 600 * 10**18)
    rules = {0: Rules(hedge_pnl_bps=50), 2: Rules(drift_policy="bands")}
    d = decide(restart(swung, mem, now=NOW + 100), rules)
    assert d.plan is not None and d.plan.profit
    assert [r.scope for r in d.fired if r.trigger == "hedge_pnl"] == ["vault:0"]
    assert any(h.scope == "vault:2:WETH" for h in d.halts)
    assert d.plan.vault(0).glp > 0  # the profit is minted into GLP
    vp1 = d.plan.vault(1)
    assert vp1.process and vp1.glp == 0 and not any(vp1.debt)
    seen, after = d.memory, d.memory_after_execution
    assert dict(seen.hedge_pnl)[0] > 0 and dict(seen.hedge_pnl)[1] > 0
    assert dict(after.hedge_pnl) == {1: dict(seen.hedge_pnl)[1], 2: dict(seen.hedge_pnl)[2]}  # only vault 0 settled
    assert dict(after.invested)[1] == dict(mem.invested)[1]  # vault 1 did not trade
    assert dict(after.invested)[0] != dict(mem.invested)[0]
    assert dict(after.oi_applied)["WETH"] == 1000 * 10**18  # no OI refit yet (the timer runs)
    # 2h later the net-OI refit: vaults 0 and 1 take the new OI; the halted vault 2 keeps the old one
    d = decide(restart(swung, d.memory, now=NOW + 100 + 2 * H), rules)
    assert d.plan is not None and {v.vault_id for v in d.plan.vaults} == {0, 1}
    after = d.memory_after_execution
    assert dict(after.oi_applied)["WETH"] == 1000 * 10**18
    assert {(v, s) for v, s, _ in after.oi_applied_vault} == {(0, "WETH"), (1, "WETH")}
    # executed: the timer still fires for vault 2 only, which is halted, so nobody trades again (no churn)
    settled = apply_plan(swung, d.plan)
    d = decide(restart(settled, after, now=NOW + 200 + 2 * H), rules)
    assert any(r.trigger == "net_oi" and r.fired for r in d.triggers)
    assert d.plan is None or {v.vault_id for v in d.plan.vaults} <= {1}  # vault 1 may still process its deposit
    assert d.plan is None or not any(v.glp or any(v.debt) for v in d.plan.vaults)
    # the operator acknowledges vault 2: it refits with the new OI and the account's OI applied advances
    acked = replace(d.memory, acks=(("band:2:WETH", NOW + 300 + 2 * H),))
    d = decide(restart(settled, acked, now=NOW + 400 + 2 * H), rules)
    assert d.plan is not None and 2 in {v.vault_id for v in d.plan.vaults}
    after = d.memory_after_execution
    assert dict(after.oi_applied)["WETH"] == 1600 * 10**18 and after.oi_applied_vault == ()
    assert "WETH" not in dict(after.oi_drift_since)


def test_a_vault_over_the_borrow_cap_still_repays_and_does_not_borrow() -> None:
    """Borrow room is negative once the reserve is over its cap: repaying stays free, borrowing more is capped."""
    snap, mem = fitted()
    capped = with_weth(snap, borrow_cap_tokens=1)  # 1 WETH cap; the account owes ~54 WETH
    b = capped.books[0]
    over = with_account(replace(capped, books=(replace(b, debt=(0, b.debt[1] * 11 // 10, b.debt[2])),
                                                *capped.books[1:])))
    d = decide(over, {}, mem)
    assert d.plan is not None
    vp = d.plan.vault(0)
    assert vp.debt[1] < 0 and not vp.partial
    under = with_account(replace(capped, books=(replace(b, debt=(0, b.debt[1] * 9 // 10, b.debt[2])),
                                                 *capped.books[1:])))
    d = decide(under, {}, mem)
    assert any(r.trigger == "delta_drift" and r.scope == "vault:0:WETH" and r.fired for r in d.triggers)
    assert d.plan is None or all(v.debt[1] <= 0 for v in d.plan.vaults)  # no WETH borrowed over the cap
