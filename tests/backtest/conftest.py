"""Shared small series for the backtest tests (hourly rows, so a few dozen ticks cover days)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from keeper.backtest import Jump, Series, generate

FLAT = {"WETH": Decimal(0), "WBTC": Decimal(0)}
JUMP_STEP = 12


@pytest.fixture(scope="session")
def flat_series() -> Series:
    """24 hourly rows, constant prices and OI (less than one 48h cycle)."""
    return generate(24, step_seconds=3600, volatility=FLAT, oi_amplitude=Decimal(0))


@pytest.fixture(scope="session")
def jump_series() -> Series:
    """36 hourly rows; WETH jumps 20% at row 12; constant OI; no other noise."""
    return generate(36, step_seconds=3600, volatility=FLAT, oi_amplitude=Decimal(0),
                    jumps=[Jump(JUMP_STEP, "WETH", Decimal("1.2"))])


@pytest.fixture(scope="session")
def noisy_series() -> Series:
    """60 hourly rows of GBM prices (80%/60% annual volatility), constant OI."""
    return generate(60, seed=5, step_seconds=3600, oi_amplitude=Decimal(0))
