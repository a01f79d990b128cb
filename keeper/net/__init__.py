"""Netting: many vaults' position changes → one `VaultManager.rebalance` Order, plus a pure model of
the contract's checks and crediting. Pure (no web3, no clock, no I/O, no floats for amounts)."""

from keeper.net.alloc import split_contract, split_largest_remainder
from keeper.net.contract import (
    apply_order,
    check_bounds,
    check_conservation,
    check_fills,
    leg_bound,
    surplus_credits,
)
from keeper.net.engine import (
    Crossing,
    NetPlan,
    NotionalComparison,
    VaultFlow,
    compare_notional,
    gross_notional,
    net_changes,
    separate_plans,
)
from keeper.net.errors import BoundTooLoose, ConservationViolated, ContractRevert, MandateViolation, NettingError
from keeper.net.fill import FillShortOfBound, GmxQuote, check_expected_fills, gmx_quote
from keeper.net.model import (
    FLAG_CYCLE,
    FLAG_HARVEST,
    FLAG_PROFIT,
    ExecutedLeg,
    Execution,
    GlpLeg,
    Oracle,
    Order,
    VaultChange,
    VaultDelta,
    oracle_from_snapshot,
    order_abi,
)

__all__ = [
    "FLAG_CYCLE",
    "FLAG_HARVEST",
    "FLAG_PROFIT",
    "BoundTooLoose",
    "ConservationViolated",
    "ContractRevert",
    "Crossing",
    "ExecutedLeg",
    "Execution",
    "FillShortOfBound",
    "GlpLeg",
    "GmxQuote",
    "MandateViolation",
    "NetPlan",
    "NettingError",
    "NotionalComparison",
    "Oracle",
    "Order",
    "VaultChange",
    "VaultDelta",
    "VaultFlow",
    "apply_order",
    "check_bounds",
    "check_conservation",
    "check_expected_fills",
    "check_fills",
    "compare_notional",
    "gmx_quote",
    "gross_notional",
    "leg_bound",
    "net_changes",
    "oracle_from_snapshot",
    "order_abi",
    "separate_plans",
    "split_contract",
    "split_largest_remainder",
    "surplus_credits",
]
