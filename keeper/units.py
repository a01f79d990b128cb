"""Unit conversions between on-chain integers and exact Decimals. Pure; rounding is explicit.

On-chain amounts stay integers at every boundary; Decimal is used only for display and for the
closed-form math inside the decision core, always with an explicit rounding direction when turned
back into integers.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext

USD30 = 10**30  # GMX prices and AUM
USD8 = 10**8  # Aave base currency
WAD = 10**18  # health factor
RAY = 10**27  # Aave rates and indices
BPS = 10_000


def to_decimal(amount: int, decimals: int) -> Decimal:
    """Exact: an integer amount with `decimals` as a Decimal (no rounding happens)."""
    with localcontext() as ctx:
        ctx.prec = 100
        return Decimal(amount).scaleb(-decimals)


def from_decimal(value: Decimal, decimals: int, *, round_up: bool = False) -> int:
    """Back to integer units; rounds toward -inf unless `round_up` (then toward +inf)."""
    with localcontext() as ctx:
        ctx.prec = 100
        scaled = value.scaleb(decimals)
        return int(scaled.to_integral_value(rounding=ROUND_CEILING if round_up else ROUND_FLOOR))


def fmt(amount: int, decimals: int, places: int = 4) -> str:
    """Human-readable fixed-point string with thousands separators, truncated toward zero."""
    value = to_decimal(amount, decimals)
    quant = Decimal(1).scaleb(-places)
    with localcontext() as ctx:
        ctx.prec = 100
        shown = value.quantize(quant, rounding="ROUND_DOWN")
    return f"{shown:,}"
