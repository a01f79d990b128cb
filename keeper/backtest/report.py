"""Backtest output: the side-by-side table (text), summary and time-series CSV, PNG plots.

Owns presentation only. Money is formatted from integers (USD × 1e30 floored to cents); floats appear only
in the plotting arrays and in the time-weighted hedge error (a ratio, not money). matplotlib runs on the
Agg backend and is imported lazily (only when plots are written).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from keeper.backtest.engine import PolicyResult, hf_display
from keeper.backtest.series import Series, fmt_units

USD30 = 10**30


def usd(usd30: int) -> str:
    cents = usd30 // 10**28
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100:,}.{cents % 100:02d}"


def _rows(results: Sequence[PolicyResult], per_vault: bool) -> list[list[str]]:
    rows: list[list[str]] = []
    for r in results:
        errors = [v.hedge_error_bps for v in r.vaults]
        rows.append([
            r.label, "all", f"{r.nonurgent_rebalances}/{r.urgent_rebalances}", f"{sum(errors) / len(errors):.1f}",
            usd(r.fee_usd30), usd(r.gas_usd30), usd(r.fee_usd30 + r.gas_usd30), hf_display(r.min_account_hf_wad),
            str(max(v.max_drawdown_bps for v in r.vaults)), str(r.refused),
        ])
        if per_vault:
            for v in r.vaults:
                rows.append([
                    "", f"{v.vault_id} {v.denomination}", str(v.rebalances), f"{v.hedge_error_bps:.1f}",
                    usd(v.fee_usd30), usd(v.gas_usd30), usd(v.fee_usd30 + v.gas_usd30), hf_display(v.min_hf_wad),
                    str(v.max_drawdown_bps), "",
                ])
    return rows


def render_table(results: Sequence[PolicyResult], *, per_vault: bool | None = None) -> str:
    """One block per policy: an "all" row (transactions non-urgent/urgent, mean hedge error over the vaults,
    fees, gas, account min HF, worst drawdown, refused plans), then one row per vault (≤ 10 vaults)."""
    if not results:
        return "no results"
    show_vaults = per_vault if per_vault is not None else len(results[0].vaults) <= 10
    header = ["policy", "vault", "rebalances", "hedge err bps", "fees USD", "gas USD", "cost USD", "min HF",
              "max DD bps", "refused"]
    rows = _rows(results, show_vaults)
    widths = [max(len(x[k]) for x in [header, *rows]) for k in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if k < 2 else c.rjust(w) for k, (c, w) in enumerate(zip(cells, widths,
                                                                                          strict=True))).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out.extend(line(x) for x in rows)
    first = results[0]
    out.append(f"rebalances: transactions after the set-up (non-urgent/urgent; per vault: plans it was in); "
               f"set-up cost {usd(first.setup_fee_usd30)} USD fees. Hedge error: time-weighted |exposure of the "
               f"hedged assets| / equity. Drawdown in the vault's denomination.")
    return "\n".join(out) + "\n"


def write_summary_csv(results: Sequence[PolicyResult], series: Series, path: Path) -> None:
    specs = series.specs
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["policy", "gate", "vault", "denomination", "rebalances", "urgent_rebalances", "refused",
                    "halt_ticks", "hedge_error_bps", "fee_usd", "gas_usd", "gas_wei",
                    *[f"fee_{s.symbol}" for s in specs], "min_hf", "max_drawdown_bps", "start_equity",
                    "end_equity", "ticks", "wall_seconds"])
        for r in results:
            errors = [v.hedge_error_bps for v in r.vaults]
            w.writerow([r.policy, int(r.gate), "all", "", r.rebalances, r.urgent_rebalances, r.refused, r.halts,
                        f"{sum(errors) / len(errors):.4f}", usd(r.fee_usd30).replace(",", ""),
                        usd(r.gas_usd30).replace(",", ""), r.gas_wei,
                        *[fmt_units(x, s.decimals) for x, s in zip(r.fee_tokens, specs, strict=True)],
                        hf_display(r.min_account_hf_wad), max(v.max_drawdown_bps for v in r.vaults), "", "",
                        r.ticks, f"{r.seconds:.3f}"])
            for v in r.vaults:
                dec = next(s.decimals for s in specs if s.symbol == v.denomination)
                w.writerow([r.policy, int(r.gate), v.vault_id, v.denomination, v.rebalances, "", "", "",
                            f"{v.hedge_error_bps:.4f}", usd(v.fee_usd30).replace(",", ""),
                            usd(v.gas_usd30).replace(",", ""), v.gas_wei,
                            *[fmt_units(x, s.decimals) for x, s in zip(v.fee_tokens, specs, strict=True)],
                            hf_display(v.min_hf_wad), v.max_drawdown_bps, fmt_units(v.start_equity, dec),
                            fmt_units(v.end_equity, dec), "", ""])


def write_timeseries_csv(results: Sequence[PolicyResult], path: Path) -> None:
    """The plotting samples: per policy, sample and vault the hedge error (bps) and equity (denomination)."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "policy", "vault", "hedge_error_bps", "equity_units"])
        for r in results:
            for t, errs, eqs in zip(r.samples_t, r.samples_error_ppm, r.samples_equity, strict=True):
                for v, (e, q) in enumerate(zip(errs, eqs, strict=True)):
                    w.writerow([t, r.label, v, fmt_units(e, 2), q])


def write_plots(results: Sequence[PolicyResult], out: Path) -> list[Path]:
    """hedge_error.png (mean over vaults), equity.png (mean equity / start, denomination units), costs.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for r in results:
        hours = [(t - r.samples_t[0]) / 3600 for t in r.samples_t]
        mean = [sum(e) / len(e) / 100 for e in r.samples_error_ppm]
        ax.plot(hours, mean, label=r.label, linewidth=1)
    ax.set_xlabel("hours")
    ax.set_ylabel("hedge error, bps of equity (mean over vaults)")
    ax.set_title("Hedge error by trigger policy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out / "hedge_error.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 4.5))
    for r in results:
        hours = [(t - r.samples_t[0]) / 3600 for t in r.samples_t]
        starts = [v.start_equity or 1 for v in r.vaults]
        mean = [sum(q / s for q, s in zip(eqs, starts, strict=True)) / len(eqs) for eqs in r.samples_equity]
        ax.plot(hours, mean, label=r.label, linewidth=1)
    ax.set_xlabel("hours")
    ax.set_ylabel("equity / start (denomination units, mean over vaults)")
    ax.set_title("Vault equity by trigger policy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out / "equity.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 4.5))
    labels = [r.label for r in results]
    fees = [r.fee_usd30 / USD30 for r in results]
    gas = [r.gas_usd30 / USD30 for r in results]
    ax.bar(labels, fees, label="GMX fees")
    ax.bar(labels, gas, bottom=fees, label="gas")
    for k, r in enumerate(results):
        ax.annotate(f"{r.rebalances} tx", (k, fees[k] + gas[k]), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("USD")
    ax.set_title("Rebalance costs by trigger policy (set-up excluded)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out / "costs.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def write_all(results: Sequence[PolicyResult], series: Series, out: Path, *, plots: bool = True) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "summary.csv", out / "timeseries.csv"]
    write_summary_csv(results, series, written[0])
    write_timeseries_csv(results, written[1])
    if plots:
        written.extend(write_plots(results, out))
    return written
