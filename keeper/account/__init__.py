"""Accounting of rebalance costs: exact fee/gas attribution per rebalance and the fee ledger that
charges each holder only for rebalances during which it held a position (one pool per vault, its depositors
as holders: keeper/account/fees.py). Pure."""

from keeper.account.attribution import (
    AttributionRecord,
    VaultCost,
    attribute,
    gross_notional_by_vault,
    record_from_json_dict,
    render_table,
)
from keeper.account.fees import (
    MICRO_USD,
    VAULT_HOLDER,
    RebalanceCharge,
    apply_rebalance,
    holder_positions,
    pool_id,
    statement,
    statements,
    vault_costs,
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
    "MICRO_USD",
    "VAULT_HOLDER",
    "AttributionRecord",
    "Holder",
    "Ledger",
    "LedgerError",
    "Pool",
    "RebalanceCharge",
    "VaultCost",
    "apply_rebalance",
    "attribute",
    "change_position",
    "check_invariant",
    "gross_notional_by_vault",
    "holder_positions",
    "ledger_from_json_dict",
    "ledger_to_json_dict",
    "pool_id",
    "record_from_json_dict",
    "record_rebalance",
    "render_table",
    "settle",
    "settle_all",
    "statement",
    "statements",
    "vault_costs",
]
