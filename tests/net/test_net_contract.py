"""The pure contract model rejects what VaultManager rejects, naming the same instrument and asset."""

from __future__ import annotations

from dataclasses import replace

import pytest

from keeper.net import (
    ConservationViolated,
    ContractRevert,
    ExecutedLeg,
    GlpLeg,
    Order,
    VaultDelta,
    apply_order,
    check_conservation,
)
from tests.net.sim import empty_book


def order() -> Order:
    return Order(
        deadline=1, flags=0,
        glp=(GlpLeg(0, 100, 10),),
        supply=(5, 0), borrow=(0, 7), interest=(0, 2),
        process_vaults=(),
        deltas=(
            VaultDelta(1, (60, 0), (-15, 7), (5, 0), (0, 9)),
            VaultDelta(2, (40, 0), (0, 0), (0, 0), (0, 0)),
        ),
    )


def test_valid_order_passes() -> None:
    check_conservation(order(), (0, 2))


@pytest.mark.parametrize(
    ("mutate", "instrument", "asset"),
    [
        (lambda o: replace(o, supply=(6, 0)), 2, 0),
        (lambda o: replace(o, interest=(0, 1)), 3, 1),
        (lambda o: replace(o, glp=(GlpLeg(0, 99, 10),)), 0, 0),
        (lambda o: replace(o, glp=(GlpLeg(0, 100, 11),)), 1, 0),
    ],
)
def test_each_identity_is_checked(mutate, instrument: int, asset: int) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConservationViolated) as e:
        check_conservation(mutate(order()), (0, 2))
    assert (e.value.instrument, e.value.asset) == (instrument, asset)


def test_structure_errors() -> None:
    with pytest.raises(ContractRevert, match="DuplicateLeg"):
        check_conservation(replace(order(), glp=(GlpLeg(0, 50, 5), GlpLeg(0, 50, 5))), (0, 2))
    with pytest.raises(ContractRevert, match="InterestOverclaimed"):
        check_conservation(order(), (0, 1))
    with pytest.raises(ContractRevert, match="LengthMismatch"):
        check_conservation(replace(order(), supply=(5,)), (0, 2))


def test_apply_order_credits_mint_surplus_remainder_to_largest() -> None:
    books = (empty_book(1, 0, 2, glp=0, cash=100), empty_book(2, 0, 2, glp=0, cash=100))
    after = apply_order(books, order(), (ExecutedLeg(0, 105, 10, 0),))
    # surplus 5 GLP over weights 60:40 → floors 3, 2 → no remainder
    assert (after[0].glp, after[1].glp) == (63, 42)
    after = apply_order(books, order(), (ExecutedLeg(0, 103, 10, 0),))
    # surplus 3 → floors 1 (1.8), 1 (1.2) → remainder 1 to the largest weight (vault 1), not largest remainder
    assert (after[0].glp, after[1].glp) == (62, 41)
    assert after[0].cash == (85, 107) and after[0].debt == (100, 109)
    with pytest.raises(ContractRevert, match="FillOutsideBound"):
        apply_order(books, order(), (ExecutedLeg(0, 99, 10, 0),))
    with pytest.raises(ContractRevert, match="InsufficientBook"):
        apply_order((empty_book(1, 0, 2, cash=0), books[1]), order(), (ExecutedLeg(0, 100, 10, 0),))
