"""keeper: keeps delta-neutral DeFi vaults neutral."""

__version__ = "0.1.0"
