"""The plan: what the decision core wants done, per vault and instrument, with its reasons.

Owns the `Plan` / `VaultPlan` dataclasses, their exact JSON form (integers as JSON integers) with
validation (an InputError names the field path and the reason), and a plain-text table renderer.
Must not decide anything, net trades, import web3 or do I/O (callers write the text it returns).

Per-asset tuples follow `Plan.assets`. Changes are signed on-chain integers; `debt` includes the
`interest` attributed this cycle (so the pool borrow/repay is debt − interest); `cash[denomination]`
is the buffer move at trade time (before `processBuffers`, which runs after the trades for `process`
vaults); the GLP change is nominal (the netting engine derives the exact GLP from the token flows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from keeper.errors import InputError
from keeper.units import fmt

PLAN_VERSION = 1
GLP_DECIMALS = 18


@dataclass(frozen=True)
class VaultPlan:
    vault_id: int
    denomination: int
    glp: int
    glp_target: int
    cash: tuple[int, ...]
    cash_target: tuple[int, ...]
    collateral: tuple[int, ...]
    collateral_target: tuple[int, ...]
    debt: tuple[int, ...]
    debt_target: tuple[int, ...]
    interest: tuple[int, ...]
    process: bool  # processBuffers (deposits in, queued withdrawals paid) after the trades
    partial: bool  # a cap limited the fit; the next tick continues
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    block_number: int
    timestamp: int
    assets: tuple[str, ...]
    decimals: tuple[int, ...]
    harvest: bool  # order flag 1
    recurring: bool  # order flag 2
    profit: bool  # order flag 4
    vaults: tuple[VaultPlan, ...]
    reasons: tuple[str, ...]
    version: int = PLAN_VERSION

    @property
    def flags(self) -> int:
        return (1 if self.harvest else 0) | (2 if self.recurring else 0) | (4 if self.profit else 0)

    def vault(self, vault_id: int) -> VaultPlan:
        for v in self.vaults:
            if v.vault_id == vault_id:
                return v
        raise KeyError(vault_id)


def plan_to_json_dict(plan: Plan) -> dict[str, Any]:
    """JSON-safe dict (tuples become lists; big integers stay exact with Python's json)."""
    return asdict(plan)


_PER_ASSET = ("cash", "cash_target", "collateral", "collateral_target", "debt", "debt_target", "interest")
_UNSIGNED = ("glp_target", "cash_target", "collateral_target", "debt_target", "interest")


def _int(raw: object, where: str, *, signed: bool) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InputError(where, f"expected an integer, got {type(raw).__name__} {raw!r:.40}")
    if not signed and raw < 0:
        raise InputError(where, f"must not be negative, got {raw}")
    if abs(raw) > 2**256 - 1:
        raise InputError(where, "exceeds 256 bits")
    return raw


def _bool(raw: object, where: str) -> bool:
    if not isinstance(raw, bool):
        raise InputError(where, f"expected true or false, got {raw!r:.40}")
    return raw


def _list(raw: object, where: str) -> Sequence[object]:
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise InputError(where, "expected a list")
    return raw


def _strs(raw: object, where: str) -> tuple[str, ...]:
    out = []
    for i, item in enumerate(_list(raw, where)):
        if not isinstance(item, str) or not item:
            raise InputError(f"{where}[{i}]", "expected a non-empty string")
        out.append(item)
    return tuple(out)


def _fields(cls: type[Any], data: object, where: str) -> Mapping[str, object]:
    if not isinstance(data, Mapping):
        raise InputError(where, f"expected an object, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InputError(f"{where}.{unknown[0]}".lstrip("."), "unknown field")
    for name in sorted(names - set(data)):
        if name != "version":
            raise InputError(f"{where}.{name}".lstrip("."), "missing")
    return data


def _vault(data: object, where: str, n: int) -> VaultPlan:
    d = _fields(VaultPlan, data, where)
    per_asset: dict[str, tuple[int, ...]] = {}
    for name in _PER_ASSET:
        items = _list(d[name], f"{where}.{name}")
        if len(items) != n:
            raise InputError(f"{where}.{name}", f"has {len(items)} entries, expected {n}")
        per_asset[name] = tuple(
            _int(x, f"{where}.{name}[{i}]", signed=name not in _UNSIGNED) for i, x in enumerate(items)
        )
    denomination = _int(d["denomination"], f"{where}.denomination", signed=False)
    if denomination >= n:
        raise InputError(f"{where}.denomination", f"asset index {denomination} out of range")
    return VaultPlan(
        vault_id=_int(d["vault_id"], f"{where}.vault_id", signed=False),
        denomination=denomination,
        glp=_int(d["glp"], f"{where}.glp", signed=True),
        glp_target=_int(d["glp_target"], f"{where}.glp_target", signed=False),
        process=_bool(d["process"], f"{where}.process"),
        partial=_bool(d["partial"], f"{where}.partial"),
        reasons=_strs(d["reasons"], f"{where}.reasons"),
        **per_asset,
    )


def plan_from_json_dict(data: object) -> Plan:
    """Validate and build a Plan; an InputError names the offending field path and the reason."""
    d = _fields(Plan, data, "")
    version = _int(d.get("version", PLAN_VERSION), "version", signed=False)
    if version != PLAN_VERSION:
        raise InputError("version", f"unsupported plan version {version} (expected {PLAN_VERSION})")
    assets = _strs(d["assets"], "assets")
    decimals = tuple(_int(x, f"decimals[{i}]", signed=False) for i, x in enumerate(_list(d["decimals"], "decimals")))
    if len(decimals) != len(assets):
        raise InputError("decimals", f"has {len(decimals)} entries, expected {len(assets)}")
    vaults = tuple(_vault(v, f"vaults[{i}]", len(assets)) for i, v in enumerate(_list(d["vaults"], "vaults")))
    ids = [v.vault_id for v in vaults]
    if len(set(ids)) != len(ids):
        raise InputError("vaults", "a vault appears more than once")
    return Plan(
        block_number=_int(d["block_number"], "block_number", signed=False),
        timestamp=_int(d["timestamp"], "timestamp", signed=False),
        assets=assets,
        decimals=decimals,
        harvest=_bool(d["harvest"], "harvest"),
        recurring=_bool(d["recurring"], "recurring"),
        profit=_bool(d["profit"], "profit"),
        vaults=vaults,
        reasons=_strs(d["reasons"], "reasons"),
        version=version,
    )


def render_table(plan: Plan) -> str:
    """Plain-text table: one row per vault and instrument that changes, amounts in whole tokens."""
    flags = [name for name, on in (("harvest", plan.harvest), ("recurring", plan.recurring),
                                   ("profit", plan.profit)) if on]
    lines = [f"plan @ block {plan.block_number} (t={plan.timestamp}) flags: {', '.join(flags) or 'none'}"]
    rows: list[tuple[str, str, str, str, str]] = [("vault", "instrument", "asset", "change", "target")]
    for v in plan.vaults:
        tag = f"{v.vault_id}{' (partial)' if v.partial else ''}"
        if v.glp:
            rows.append((tag, "glp", "GLP", fmt(v.glp, GLP_DECIMALS), fmt(v.glp_target, GLP_DECIMALS)))
        for name, change, target in (("buffer/cash", v.cash, v.cash_target),
                                     ("collateral", v.collateral, v.collateral_target),
                                     ("debt", v.debt, v.debt_target)):
            for i, delta in enumerate(change):
                if delta:
                    dec = plan.decimals[i]
                    rows.append((tag, name, plan.assets[i], fmt(delta, dec), fmt(target[i], dec)))
        if v.process:
            rows.append((tag, "process buffers", "", "", ""))
    widths = [max(len(r[k]) for r in rows) for k in range(5)]
    for r in rows:
        lines.append("  ".join(c.rjust(w) if k >= 3 else c.ljust(w) for k, (c, w) in enumerate(zip(r, widths,
                                                                                                   strict=True))))
    lines.extend(f"- {reason}" for reason in plan.reasons)
    for v in plan.vaults:
        lines.extend(f"- vault {v.vault_id}: {reason}" for reason in v.reasons)
    return "\n".join(line.rstrip() for line in lines) + "\n"
