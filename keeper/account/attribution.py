"""Exact attribution of one rebalance's GMX fees and gas to the vaults that caused them.

Owns the attribution rules and the persisted `AttributionRecord` (JSON round trip) plus its table
rendering for the CLI. Must not import web3, read the clock or do I/O.

Rules (docs/netting.md):
* fee of the leg in asset i (the `feeTokens` of `GlpTraded`, in token i) is charged only to the vaults
  on the side of the net trade (F_v[i] > 0 for a mint, F_v[i] < 0 for a redeem), pro rata to |F_v[i]|;
  vaults on the other side were crossed internally and pay nothing for asset i;
* gas (gas used × effective gas price, wei) is charged to the vaults with a delta in the order, pro rata
  to their gross notional at the oracle marks: Σ_i price_i × (|collateral| + |debt w/o interest| + |F|);
  equal weights if every such notional is 0;
* surplus (what a fill gives above its minimum) is credited by the contract per leg, to the vaults on
  that leg's side pro rata to their GLP through the leg (`deltas.glp[i]`); `surplus_leak_usd30` is the
  value at the marks of (credited − that fair share): zero for every order the netting engine builds,
  kept as a tripwire. A vault's value change at the marks is −fee value (+ leak, normally 0).
* every split is `split_largest_remainder` (largest remainder, ties to the lowest vault id): the shares
  sum exactly to what was paid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from keeper.net.alloc import split_contract, split_largest_remainder
from keeper.net.contract import check_fills, surplus_credits
from keeper.net.engine import NetPlan
from keeper.net.model import Execution

RECORD_VERSION = 1


@dataclass(frozen=True)
class VaultCost:
    """One vault's share: GMX fee per asset (token units), gas (wei), and their display values."""

    vault_id: int
    fee_tokens: tuple[int, ...]
    gas_wei: int
    fee_usd30: int
    notional_usd30: int
    surplus_leak_usd30: int = 0


@dataclass(frozen=True)
class AttributionRecord:
    """Per rebalance: what was paid and who bears it. Σ vaults.fee_tokens[i] == fee_tokens[i];
    Σ vaults.gas_wei + unattributed_gas_wei == gas_wei."""

    rebalance_id: int
    gas_wei: int
    fee_tokens: tuple[int, ...]
    vaults: tuple[VaultCost, ...]
    unattributed_gas_wei: int = 0
    version: int = RECORD_VERSION

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "rebalance_id": self.rebalance_id,
            "gas_wei": self.gas_wei,
            "fee_tokens": list(self.fee_tokens),
            "unattributed_gas_wei": self.unattributed_gas_wei,
            "vaults": [
                {
                    "vault_id": v.vault_id,
                    "fee_tokens": list(v.fee_tokens),
                    "gas_wei": v.gas_wei,
                    "fee_usd30": v.fee_usd30,
                    "notional_usd30": v.notional_usd30,
                    "surplus_leak_usd30": v.surplus_leak_usd30,
                }
                for v in self.vaults
            ],
        }


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key}: expected an integer")
    return value


def _ints(data: Mapping[str, Any], key: str) -> tuple[int, ...]:
    value = data[key]
    if not isinstance(value, list) or any(isinstance(x, bool) or not isinstance(x, int) for x in value):
        raise ValueError(f"{key}: expected a list of integers")
    return tuple(value)


def record_from_json_dict(data: Mapping[str, Any]) -> AttributionRecord:
    """Inverse of `AttributionRecord.to_json_dict`; checks the exact-sum invariants."""
    if _int(data, "version") != RECORD_VERSION:
        raise ValueError(f"unsupported attribution record version {data['version']}")
    vaults = tuple(
        VaultCost(
            vault_id=_int(v, "vault_id"),
            fee_tokens=_ints(v, "fee_tokens"),
            gas_wei=_int(v, "gas_wei"),
            fee_usd30=_int(v, "fee_usd30"),
            notional_usd30=_int(v, "notional_usd30"),
            surplus_leak_usd30=int(v.get("surplus_leak_usd30", 0)),
        )
        for v in data["vaults"]
    )
    rec = AttributionRecord(
        rebalance_id=_int(data, "rebalance_id"),
        gas_wei=_int(data, "gas_wei"),
        fee_tokens=_ints(data, "fee_tokens"),
        vaults=vaults,
        unattributed_gas_wei=_int(data, "unattributed_gas_wei"),
    )
    for i, total in enumerate(rec.fee_tokens):
        if sum(v.fee_tokens[i] for v in vaults) != total:
            raise ValueError(f"fee shares of asset {i} do not sum to {total}")
    if sum(v.gas_wei for v in vaults) + rec.unattributed_gas_wei != rec.gas_wei:
        raise ValueError("gas shares do not sum to gas_wei")
    return rec


def gross_notional_by_vault(plan: NetPlan) -> dict[int, Fraction]:
    """Exact USD × 1e30 of every move a vault asked for (lending moves and GLP token flows)."""
    out: dict[int, Fraction] = {}
    for d in plan.order.deltas:
        flow = plan.flow(d.vault)
        total = Fraction(0)
        for i, f in enumerate(flow.tokens):
            debt_moved = d.cash[i] + d.collateral[i] + f  # cash = debt − collateral − F (interest excluded)
            total += plan.oracle.token_value(i, abs(d.collateral[i]) + abs(debt_moved) + abs(f))
        out[d.vault] = total
    return out


def surplus_leak_by_vault(plan: NetPlan, execution: Execution) -> dict[int, Fraction]:
    """Exact USD × 1e30 per vault: surplus the contract credits minus the fair surplus share (pro rata to the
    vault's GLP through each leg on that leg's side). Zero for every order the netting engine builds; a
    non-zero value flags an order (or a contract) that moves surplus between vaults."""
    oracle = plan.oracle
    credited = surplus_credits(plan.order, execution.legs)
    surplus = check_fills(plan.order, execution.legs)
    out: dict[int, Fraction] = {}
    for v, (glp, cash) in credited.items():
        out[v] = oracle.glp_value(glp) + sum((oracle.token_value(i, x) for i, x in enumerate(cash)), Fraction(0))
    for leg in plan.order.glp:
        s = surplus[leg.asset]
        sign = 1 if leg.glp > 0 else -1
        # fair share: pro rata to each vault's GLP through this leg on the leg's side (its own trade), with
        # the contract's remainder rule — so a well-formed order leaks nothing, to the unit
        weights = {d.vault: abs(d.glp[leg.asset]) for d in plan.order.deltas if d.glp[leg.asset] * sign > 0}
        for v, share in split_contract(s, weights).items():
            value = oracle.glp_value(share) if leg.glp > 0 else oracle.token_value(leg.asset, share)
            out[v] = out.get(v, Fraction(0)) - value
    return out


def attribute(plan: NetPlan, execution: Execution, rebalance_id: int) -> AttributionRecord:
    """Split the fees and gas actually paid over the vaults of `plan` (exact to the smallest unit)."""
    n = plan.oracle.asset_count
    legs = {leg.asset: leg for leg in plan.order.glp}
    if {e.asset for e in execution.legs} != set(legs) or len(execution.legs) != len(legs):
        raise ValueError("executed legs do not match the order's legs")
    vault_ids = [d.vault for d in plan.order.deltas]
    fees = {v: [0] * n for v in vault_ids}
    fee_totals = [0] * n
    for e in execution.legs:
        if e.fee_tokens < 0:
            raise ValueError("negative fee")
        fee_totals[e.asset] += e.fee_tokens
        sign = 1 if legs[e.asset].glp > 0 else -1
        weights = {f.vault_id: abs(f.tokens[e.asset]) for f in plan.flows if f.tokens[e.asset] * sign > 0}
        for v, share in split_largest_remainder(e.fee_tokens, weights).items():
            fees[v][e.asset] += share
    gas = execution.gas_wei
    notional = gross_notional_by_vault(plan)
    unattributed = 0
    gas_shares: dict[int, int] = dict.fromkeys(vault_ids, 0)
    if vault_ids:
        weights_g: dict[int, int | Fraction] = dict(notional)
        if not any(notional.values()):
            weights_g = dict.fromkeys(vault_ids, 1)
        gas_shares = split_largest_remainder(gas, weights_g)
    else:
        unattributed = gas
    leak = surplus_leak_by_vault(plan, execution)
    vaults = tuple(
        VaultCost(
            vault_id=v,
            fee_tokens=tuple(fees[v]),
            gas_wei=gas_shares[v],
            fee_usd30=math.floor(sum((plan.oracle.token_value(i, x) for i, x in enumerate(fees[v])), Fraction(0))),
            notional_usd30=math.floor(notional[v]),
            surplus_leak_usd30=math.floor(leak[v]),
        )
        for v in vault_ids
    )
    return AttributionRecord(rebalance_id, gas, tuple(fee_totals), vaults, unattributed)


def _fixed(amount: int, decimals: int, places: int) -> str:
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**decimals)
    digits = f"{frac:0{decimals}d}"[:places] if decimals else ""
    return f"{sign}{whole:,}" + (f".{digits}" if places and decimals else "")


def render_table(
    records: Sequence[AttributionRecord],
    symbols: Sequence[str] | None = None,
    decimals: Sequence[int] | None = None,
) -> str:
    """A plain-text table: one row per (rebalance, vault); fees per asset, gas in gwei, fee USD."""
    if not records:
        return "no rebalance costs recorded"
    n = max(len(r.fee_tokens) for r in records)
    names = list(symbols) if symbols else [f"asset{i}" for i in range(n)]
    decs = list(decimals) if decimals else [0] * n
    header = ["rebalance", "vault", *[f"fee {s}" for s in names], "fee USD", "gas gwei", "notional USD"]
    rows: list[list[str]] = []
    for r in records:
        for v in r.vaults:
            rows.append(
                [
                    str(r.rebalance_id),
                    str(v.vault_id),
                    *[_fixed(x, decs[i], min(decs[i], 6)) for i, x in enumerate(v.fee_tokens)],
                    _fixed(v.fee_usd30, 30, 4),
                    _fixed(v.gas_wei, 9, 3),
                    _fixed(v.notional_usd30, 30, 2),
                ]
            )
        rows.append(
            [
                str(r.rebalance_id),
                "total",
                *[_fixed(x, decs[i], min(decs[i], 6)) for i, x in enumerate(r.fee_tokens)],
                _fixed(sum(v.fee_usd30 for v in r.vaults), 30, 4),
                _fixed(r.gas_wei, 9, 3),
                _fixed(sum(v.notional_usd30 for v in r.vaults), 30, 2),
            ]
        )
    widths = [max(len(row[k]) for row in [header, *rows]) for k in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = (c.ljust(w) if k < 2 else c.rjust(w) for k, (c, w) in enumerate(zip(cells, widths, strict=True)))
        return "  ".join(padded)

    lines = [line(header), *(line(row) for row in rows)]
    return "\n".join(lines)
