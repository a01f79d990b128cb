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
    surplus_credits,
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


def test_glp_is_conserved_per_asset() -> None:
    # the right total (100) booked partly against asset 1, which has no leg
    shifted = replace(order(), deltas=(
        VaultDelta(1, (55, 5), (-15, 7), (5, 0), (0, 9)),
        VaultDelta(2, (40, 0), (0, 0), (0, 0), (0, 0)),
    ))
    with pytest.raises(ConservationViolated) as e:
        check_conservation(shifted, (0, 2))
    assert (e.value.instrument, e.value.asset, e.value.declared, e.value.executed) == (0, 0, 95, 100)
    with pytest.raises(ContractRevert, match="LengthMismatch"):
        check_conservation(replace(order(), deltas=(VaultDelta(1, (100,), (-15, 7), (5, 0), (0, 9)),)), (0, 2))


def test_each_leg_credits_only_its_own_side() -> None:
    # asset 0: vault 1 mints (+60), vault 3 is crossed the other way (−10) → mint leg 50;
    # asset 1: vault 2 redeems (−40), vault 3 buys (+15)             → redeem leg −25.
    # Vault 3 gains 5 GLP overall, so the old total-GLP weights gave it a share of the asset-0 mint surplus;
    # it is on the minority side of both legs and now gets no surplus.
    o = Order(
        deadline=1, flags=0,
        glp=(GlpLeg(0, 50, 10), GlpLeg(1, -25, 7)),
        supply=(0, 0), borrow=(0, 0), interest=(0, 0), process_vaults=(),
        deltas=(
            VaultDelta(1, (60, 0), (-12, 0), (0, 0), (0, 0)),
            VaultDelta(2, (0, -40), (0, 9), (0, 0), (0, 0)),
            VaultDelta(3, (-10, 15), (2, -2), (0, 0), (0, 0)),
        ),
    )
    check_conservation(o, (0, 0))
    executed = (ExecutedLeg(0, 53, 10, 0), ExecutedLeg(1, 25, 11, 0))
    assert surplus_credits(o, executed) == {1: (3, (0, 0)), 2: (0, (0, 4)), 3: (0, (0, 0))}
    books = tuple(empty_book(v, 0, 2, glp=100, cash=100) for v in (1, 2, 3))
    after = apply_order(books, o, executed)
    assert [(b.glp, b.cash) for b in after] == [(163, (88, 100)), (60, (100, 113)), (105, (102, 98))]
    # a surplus nobody traded for (no vault with deltas.glp[0] > 0) reverts
    lone = replace(o, deltas=(VaultDelta(1, (0, 0), (-12, 0), (0, 0), (0, 0)), *o.deltas[1:]))
    with pytest.raises(ContractRevert, match="NoSurplusRecipient"):
        surplus_credits(lone, executed)
