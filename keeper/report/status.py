"""Render a Snapshot for people (`keeper status`): a table, or a JSON document for scripts.

Pure: formats numbers that are already in the snapshot; computes only display ratios.
"""

from __future__ import annotations

from typing import Any

from keeper.snapshot import MAX_UINT256, Snapshot
from keeper.units import USD30, WAD, fmt


def _price(snap: Snapshot, i: int) -> str:
    a = snap.assets[i]
    return fmt(a.feed_answer, a.feed_decimals, 2)


def glp_composition(snap: Snapshot) -> list[tuple[str, int]]:
    """Each asset's share of GLP AUM in bps, from pool amounts at the GMX max price (display only)."""
    values = []
    for a in snap.assets:
        held = a.pool_amount if a.is_stable else a.pool_amount - a.reserved_amount + 0
        usd = held * a.gmx_max_price // 10**a.decimals + (0 if a.is_stable else a.guaranteed_usd)
        values.append((a.symbol, usd))
    total = sum(v for _, v in values) or 1
    return [(symbol, usd * 10_000 // total) for symbol, usd in values]


def health_factor_text(hf: int) -> str:
    return "∞ (no debt)" if hf == MAX_UINT256 else fmt(hf, 18, 4)


def render_table(snap: Snapshot, vault_names: dict[int, str] | None = None) -> str:
    names = vault_names or {}
    glp_price = snap.glp.aum_min * 10**18 // snap.glp.supply if snap.glp.supply else 0
    lines = [
        f"block {snap.block_number}  time {snap.block_timestamp}  chain {snap.chain_id}",
        "oracle prices (USD): " + "  ".join(f"{a.symbol} {_price(snap, i)}" for i, a in enumerate(snap.assets)),
        f"GLP: supply {fmt(snap.glp.supply, 18, 2)}  price {fmt(glp_price, 30, 6)} USD  "
        f"AUM {fmt(snap.glp.aum_min, 30, 0)}..{fmt(snap.glp.aum_max, 30, 0)} USD  "
        f"mint/burn fee {snap.glp.mint_burn_fee_bps} bps",
        "GLP composition: " + "  ".join(f"{s} {bps / 100:.2f}%" for s, bps in glp_composition(snap)),
        f"lending account: collateral {fmt(snap.lending.total_collateral_base, 8, 2)} USD  "
        f"debt {fmt(snap.lending.total_debt_base, 8, 2)} USD  "
        f"health factor {health_factor_text(snap.lending.health_factor)}",
        f"keeper {snap.keeper_address}: {fmt(snap.keeper_balance_wei, 18, 4)} ETH  "
        f"manager paused={snap.manager.paused} rebalances={snap.manager.rebalance_count}",
        "",
    ]
    header = ["vault", "denom", "equity USD", "GLP", "buffer", "collateral", "debt", "pending dep.", "shares"]
    rows = [header]
    for b in snap.books:
        d = snap.assets[b.denomination]
        coll = ", ".join(
            f"{fmt(c, snap.assets[i].decimals, 4)} {snap.assets[i].symbol}" for i, c in enumerate(b.collateral) if c
        )
        debt = ", ".join(
            f"{fmt(x, snap.assets[i].decimals, 4)} {snap.assets[i].symbol}" for i, x in enumerate(b.debt) if x
        )
        rows.append(
            [
                f"{b.vault_id} {names.get(b.vault_id, '')}".strip(),
                d.symbol,
                fmt(b.equity_usd, 30, 2),
                fmt(b.glp, 18, 2),
                fmt(b.cash[b.denomination], d.decimals, 4),
                coll or "-",
                debt or "-",
                fmt(b.pending_deposits, d.decimals, 4),
                fmt(b.total_shares, 18, 2),
            ]
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    for r in rows:
        lines.append("  ".join(cell.ljust(widths[c]) for c, cell in enumerate(r)).rstrip())
    return "\n".join(lines)


def render_json(snap: Snapshot) -> dict[str, Any]:
    data = snap.to_json_dict()
    data["derived"] = {
        "glp_price_usd30": snap.glp.aum_min * 10**18 // snap.glp.supply if snap.glp.supply else 0,
        "glp_composition_bps": dict(glp_composition(snap)),
        "health_factor_wad": snap.lending.health_factor,
        "usd30_unit": USD30,
        "wad_unit": WAD,
    }
    return data
