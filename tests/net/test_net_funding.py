"""The demo's InsufficientBalance: VaultManager repays BEFORE it withdraws collateral (`_moveLending`), so a
crossing that pays one vault's repay with the tokens another vault's collateral withdrawal frees cannot be
executed — the manager's balance at the repay step is only what it holds plus the redeem legs' output.

Numbers from the 8-day demo (journal, intent 29 at block 458, after the WETH crash): vault 0 (USDC) withdraws
43,371.63 USDC of collateral into GLP, vaults 1 and 2 repay 37,227.86 and 19,008.37 USDC from GLP. Crossed,
the order redeemed only the 12,864.61 USDC net; the repay needed 56,236.24 and the manager held ~34k: the
simulation gate refused it six blocks in a row with `InsufficientBalance(VaultManager, 34,261.96, 56,248.04)`.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.net import ContractRevert, VaultChange, check_conservation, check_funding, net_changes
from keeper.net.errors import NettingError
from tests.net.sim import oracle3

N = 3
ALL = frozenset(range(N))


def demo_changes() -> list[VaultChange]:
    z = (0, 0, 0)
    return [
        VaultChange(0, 0, ALL, 0, (-43_371_628_791, 0, 0), z, z, 0),  # withdraws USDC collateral → GLP
        VaultChange(1, 1, ALL, 0, z, (-37_227_864_581, 0, 0), z, 0),  # GLP → repays USDC
        VaultChange(2, 2, ALL, 0, z, (-19_008_371_653, 0, 0), z, 0),
    ]


HELD = (21_189_858_793, 0, 0)  # the manager's USDC (books' cash), a lower bound of what it holds


def test_crossing_a_withdrawal_into_a_repay_is_unfundable_and_now_kept_as_cash() -> None:
    old = net_changes(demo_changes(), oracle3(), slippage_bps=60, max_slippage_bps=100, deadline=1)
    with pytest.raises(ContractRevert, match="InsufficientBalance") as e:
        check_funding(old.order, HELD)  # the contract would revert: what the demo's simulation gate said
    assert e.value.args_[0] == 0 and e.value.args_[2] == 37_227_864_581 + 19_008_371_653

    new = net_changes(demo_changes(), oracle3(), slippage_bps=60, max_slippage_bps=100, deadline=1, held=HELD)
    check_funding(new.order, HELD)
    check_conservation(new.order, (0, 0, 0))
    (leg,) = new.order.glp
    repay = 37_227_864_581 + 19_008_371_653
    assert leg.glp < 0 and leg.asset == 0 and leg.token_amount == repay - HELD[0]  # exactly what is missing
    v0 = new.order.delta(0)
    assert v0 is not None
    kept = v0.cash[0]
    assert kept == repay - HELD[0] - (repay - 43_371_628_791)  # the uncrossed part of its withdrawal stays cash
    assert 0 < kept < 43_371_628_791 and v0.glp[0] > 0  # the rest still crosses into GLP


def test_nothing_changes_when_the_manager_holds_enough() -> None:
    plain = net_changes(demo_changes(), oracle3(), slippage_bps=60, max_slippage_bps=100, deadline=1)
    rich = net_changes(demo_changes(), oracle3(), slippage_bps=60, max_slippage_bps=100, deadline=1,
                       held=(10**12, 0, 0))
    assert rich.order == plain.order


@st.composite
def lending(draw: st.DrawFn) -> list[VaultChange]:
    out = []
    for vid in draw(st.lists(st.integers(0, 9), min_size=1, max_size=5, unique=True)):
        denom = draw(st.integers(0, N - 1))
        coll = tuple(draw(st.integers(-10**11, 10**11)) for _ in range(N))
        debt = tuple(draw(st.integers(-10**11, 10**11)) for _ in range(N))
        out.append(VaultChange(vid, denom, ALL, 0, coll, debt, (0,) * N, draw(st.integers(-10**10, 10**10))))
    return out


@settings(max_examples=300, deadline=None)
@given(changes=lending(), held=st.tuples(*(st.integers(0, 10**11) for _ in range(N))))
def test_with_held_balances_every_order_is_fundable_in_the_contracts_order(
    changes: list[VaultChange], held: tuple[int, int, int]
) -> None:
    try:
        plan = net_changes(changes, oracle3(), slippage_bps=30, max_slippage_bps=100, deadline=1, held=held)
    except NettingError as exc:  # dust legs, or a repay larger than held + every redeem: refused, not sent
        assert "below one GLP unit" in str(exc) or "InsufficientBalance" in str(exc)
        return
    check_funding(plan.order, held)
    check_conservation(plan.order, (0, 0, 0))
