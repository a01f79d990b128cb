"""Accounting of rebalance costs: exact fee/gas attribution per rebalance and the fee ledger that
charges each holder only for rebalances during which it held a position. Pure."""

from keeper.account.attribution import (
    AttributionRecord,
    VaultCost,
    attribute,
    gross_notional_by_vault,
    record_from_json_dict,
    render_table,
)
from keeper.account.ledger import (
    ACC_SCALE,
    Holder,
    Ledger,
    LedgerError,
    Pool,
    change_position,
    check_invariant,
    ledger_from_json_dict,
    ledger_to_json_dict,
    record_rebalance,
    settle,
    settle_all,
)

__all__ = [
    "ACC_SCALE",
    "AttributionRecord",
    "Holder",
    "Ledger",
    "LedgerError",
    "Pool",
    "VaultCost",
    "attribute",
    "change_position",
    "check_invariant",
    "gross_notional_by_vault",
    "ledger_from_json_dict",
    "ledger_to_json_dict",
    "record_from_json_dict",
    "record_rebalance",
    "render_table",
    "settle",
    "settle_all",
]
