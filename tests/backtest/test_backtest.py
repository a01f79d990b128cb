"""keeper backtest: the replay through decide / netting / costs on small synthetic series (pure, no chain)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keeper.backtest import POLICIES, Options, Series, read_csv, run_policy, write_csv
from keeper.backtest.engine import PolicyResult, plan_changes
from keeper.backtest.world import funded_world, row_aum_usd30, snapshot
from keeper.decide import Rules, decide
from keeper.errors import InputError
from keeper.snapshot import snapshot_from_json_dict
from tests.backtest.conftest import JUMP_STEP

USD30 = 10**30
OPTS = Options(vaults=3)


def runs(series: Series, policies: tuple[str, ...] = POLICIES) -> dict[str, PolicyResult]:
    out = {}
    for policy in policies:
        for gate in (True, False):
            r = run_policy(series, policy, gate, OPTS)
            out[r.label] = r
    return out


def test_generated_series_starts_glp_at_one_dollar(flat_series: Series) -> None:
    row = flat_series.rows[0]
    aum = row_aum_usd30(flat_series.specs, row)
    assert aum * 10**18 // row.glp_supply // 10**24 == 10**6  # $1.000000 per GLP


def test_snapshot_is_a_valid_snapshot(flat_series: Series) -> None:
    world = funded_world(flat_series.specs, flat_series.rows[0], 3, 1_000_000)
    snap = snapshot(world, flat_series.rows[0], 1)
    again = snapshot_from_json_dict(json.loads(json.dumps(snap.to_json_dict())))
    assert again == snap
    assert all(abs(b.equity_usd // USD30 - 1_000_000) <= 1 for b in snap.books)


def test_flat_series_no_rebalances_and_zero_fees_for_every_policy(flat_series: Series) -> None:
    for label, r in runs(flat_series).items():
        assert r.rebalances == 0, label
        assert r.fee_usd30 == 0 and r.gas_usd30 == 0 and r.gas_wei == 0 and not any(r.fee_tokens), label
        assert r.refused == 0 and r.halts == 0, label
        assert r.setup_fee_usd30 > 0  # the set-up invested the vaults (excluded from the metrics)
        # what remains is the set-up's GMX fee (30 bps of the GLP bought): the debts were fitted to the nominal GLP
        assert all(v.hedge_error_bps < 30 for v in r.vaults), (label, [v.hedge_error_bps for v in r.vaults])


def _mean_error_after(r: PolicyResult, ts: int) -> float:
    errors = [sum(e) / len(e) for t, e in zip(r.samples_t, r.samples_error_ppm, strict=True) if t >= ts]
    return sum(errors) / len(errors)


def test_jump_fixed_drift_rebalances_and_hedges_better_than_time_only(jump_series: Series) -> None:
    jump_ts = jump_series.rows[JUMP_STEP].timestamp
    fixed = run_policy(jump_series, "fixed", False, OPTS)
    time_only = run_policy(jump_series, "time", False, OPTS)
    assert fixed.rebalances >= 1
    assert time_only.rebalances == 0  # no cycle within 36h, HF stays above the trigger
    assert _mean_error_after(fixed, jump_ts) < _mean_error_after(time_only, jump_ts) / 5
    # before the jump both are the same fitted books
    assert fixed.samples_error_ppm[:JUMP_STEP] == time_only.samples_error_ppm[:JUMP_STEP]
    # the unhedged short WETH debt of the USD vault lost: time-only's HF fell further
    assert fixed.vaults[0].min_hf_wad is not None and time_only.vaults[0].min_hf_wad is not None
    assert time_only.vaults[0].min_hf_wad < fixed.vaults[0].min_hf_wad


def test_cost_gate_never_adds_non_urgent_rebalances(jump_series: Series, noisy_series: Series) -> None:
    for series in (jump_series, noisy_series):
        for policy in POLICIES:
            gated = run_policy(series, policy, True, OPTS)
            free = run_policy(series, policy, False, OPTS)
            assert gated.nonurgent_rebalances <= free.nonurgent_rebalances, (policy, gated.rebalances, free.rebalances)


def test_fees_and_gas_accounted_equal_the_attributed_costs(noisy_series: Series) -> None:
    r = run_policy(noisy_series, "fixed", False, OPTS)
    assert r.rebalances > 0
    for i, total in enumerate(r.fee_tokens):
        assert sum(v.fee_tokens[i] for v in r.vaults) == total
    assert sum(v.gas_wei for v in r.vaults) + r.unattributed_gas_wei == r.gas_wei
    assert r.gas_wei == r.rebalances * OPTS.gas_units * OPTS.gas_price_wei  # the series' constant 1 gwei
    assert r.fee_usd30 > 0 and sum(r.fee_tokens) > 0


def test_plan_changes_is_the_daemons(jump_series: Series) -> None:
    from keeper.daemon.app import plan_changes as daemon_plan_changes

    world = funded_world(jump_series.specs, jump_series.rows[0], 3, 1_000_000)
    snap = snapshot(world, jump_series.rows[0], 1)
    rules = {b.vault_id: Rules() for b in snap.books}
    decision = decide(snap, rules)
    assert decision.plan is not None
    assert plan_changes(decision.plan, snap, rules) == daemon_plan_changes(decision.plan, snap, rules)


def test_csv_round_trip(jump_series: Series, tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    write_csv(jump_series, path)
    assert read_csv(path) == jump_series


def _corrupt(tmp_path: Path, series: Series, row: int, column: str, value: str) -> Path:
    path = tmp_path / "s.csv"
    write_csv(series, path)
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[row].split(",")
    cells[header.index(column)] = value
    lines[row] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("column", "value", "reason"), [
    ("price_WETH", "abc", "expected a non-negative decimal number"),
    ("price_WETH", "0", "must be positive"),
    ("pool_WBTC", "1.123456789", "more than 8 decimal places"),
    ("reserved_USDC", "-5", "expected a non-negative decimal number"),
    ("timestamp", "1", "is not after the previous row"),
])
def test_malformed_csv_names_row_and_column(flat_series: Series, tmp_path: Path, column: str, value: str,
                                            reason: str) -> None:
    path = _corrupt(tmp_path, flat_series, 3, column, value)
    with pytest.raises(InputError) as exc:
        read_csv(path)
    assert "row 3 (line 4)" in str(exc.value)
    assert f"column {column}" in str(exc.value)
    assert reason in str(exc.value)


def test_malformed_header_names_the_column(flat_series: Series, tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    write_csv(flat_series, path)
    text = path.read_text()
    (tmp_path / "missing.csv").write_text(text.replace("short_avg_WETH", "short_average_WETH", 1))
    with pytest.raises(InputError, match="column short_avg_WETH: missing"):
        read_csv(tmp_path / "missing.csv")
    (tmp_path / "unknown.csv").write_text(text.replace("price_WBTC", "price_DOGE", 1))
    with pytest.raises(InputError, match="column price_DOGE: unknown asset DOGE"):
        read_csv(tmp_path / "unknown.csv")
    lines = text.splitlines()
    (tmp_path / "short.csv").write_text("\n".join([*lines[:3], lines[3].rsplit(",", 1)[0]]) + "\n")
    with pytest.raises(InputError, match=r"row 3 \(line 4\): has 20 fields, the header has 21"):
        read_csv(tmp_path / "short.csv")
