"""Errors of the netting engine and of the pure contract model.

Owns the exception types raised while building or checking an `Order`; the contract-mirroring ones
carry the same fields as `VaultManager`'s custom errors so a test failure reads like a revert.
Must not import web3, read the clock or do I/O.
"""

from __future__ import annotations

from keeper.errors import DecisionHalt


class NettingError(DecisionHalt):
    """The changes cannot be netted into a valid Order: no trade until the plan is fixed."""


class MandateViolation(NettingError):
    """A VaultChange touches an asset outside the vault's mandate."""


class BoundTooLoose(NettingError):
    """A leg's minimum is worth less than (1 − maxSlippageBps) of what it gives up (contract `BoundTooLoose`)."""


class ContractRevert(NettingError):
    """The pure contract model predicts a revert of `VaultManager.rebalance` (named like the Solidity error)."""

    def __init__(self, name: str, *args: int) -> None:
        super().__init__(f"{name}({', '.join(str(a) for a in args)})")
        self.name = name
        self.args_ = args


class ConservationViolated(ContractRevert):
    """`ConservationViolated(instrument, asset, declared, executed)`; instrument 0 GLP, 1 cash, 2 collateral, 3 debt."""

    def __init__(self, instrument: int, asset: int, declared: int, executed: int) -> None:
        super().__init__("ConservationViolated", instrument, asset, declared, executed)
        self.instrument = instrument
        self.asset = asset
        self.declared = declared
        self.executed = executed
