"""Leveraged LP (LYF) devnet contracts on anvil: UniPair, LyfLender, LyfFarm, LyfPosition, and the planner
(keeper.decide.lyf) driving a one-transaction rebalance against them.

The LYF system is deployed once for this module (inside a snapshot reverted at module end); every test
runs under the `chain` fixture's snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import pytest
from contract_errors import revert_of
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from keeper.chain.lyf_reader import read_lyf_state
from keeper.decide.lyf import LyfPlan, LyfRules, LyfState, onchain_leverage, plan, position, triggers
from keeper.devnet.anvil import Anvil, rpc
from keeper.devnet.deploy import Deployment, contract, send
from keeper.devnet.lyf import RATES, LyfDeployment, deploy_lyf, move_price

E18, E6, WAD, RAY = 10**18, 10**6, 10**18, 10**27
YEAR = 365 * 24 * 3600
MAX = 2**256 - 1
GAS_LIMIT = 1_800_000


@dataclass(frozen=True)
class Lyf:
    d: LyfDeployment
    avax: Contract
    usdc: Contract
    feed: Contract
    pair: Contract
    lender: Contract
    farm: Contract
    pos: Contract


@pytest.fixture(scope="module")
def lyf(w3: Web3, anvil: Anvil, deployment: Deployment) -> Iterator[Lyf]:
    snapshot = rpc(anvil.url, "evm_snapshot")
    d = deploy_lyf(w3)
    try:
        yield Lyf(
            d,
            contract(w3, "TestToken", d.volatile),
            contract(w3, "TestToken", d.stable),
            contract(w3, "PriceFeed", d.feed),
            contract(w3, "UniPair", d.pair),
            contract(w3, "LyfLender", d.lender),
            contract(w3, "LyfFarm", d.farm),
            contract(w3, "LyfPosition", d.position),
        )
    finally:
        assert rpc(anvil.url, "evm_revert", [snapshot]), "evm_revert failed"


def _latest_state(w3: Web3, x: Lyf) -> LyfState:
    return read_lyf_state(w3, x.d, w3.eth.block_number)


def _rebalance_args(p: LyfPlan, deadline: int) -> tuple[int, int, int, int, int, int]:
    swap = p.stable_to_swap if p.stable_to_swap else -p.volatile_to_swap
    return (p.lp_to_remove, swap, p.min_out, p.repay_stable, p.repay_volatile, deadline)


def _deadline(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"]) + 600


def _age(anvil: Anvil, seconds: int) -> None:
    """Let time pass and mine one block (interest and rewards accrue)."""
    rpc(anvil.url, "evm_increaseTime", [seconds])
    rpc(anvil.url, "evm_mine")


# ---- set-up -------------------------------------------------------------------------------------------


def test_setup_is_neutral_at_three_times_and_needs_no_plan(w3: Web3, lyf: Lyf, chain: Any) -> None:
    x = lyf
    assert (x.pair.functions.token0().call(), x.pair.functions.token1().call()) == (x.d.volatile, x.d.stable)
    assert x.pair.functions.decimals().call() == 18
    r0, r1, _ = x.pair.functions.getReserves().call()
    assert (r0, r1) == (325_000 * E18, 6_500_000 * E6)  # the LP account's 250k / 5M plus the position's LP
    lev = x.pos.functions.leverageWad().call()
    # 3.00× up to the pair's LP rounding and the interest of the seconds since `open` (~1e-8)
    assert 3 * WAD <= lev < 3 * WAD + 10**12
    assert x.pos.functions.leverageBps().call() == 30_000
    debt_v, debt_s = x.pos.functions.debts().call()
    # borrowed 75k AVAX / 500k USDC at `open`; at most a minute of interest since
    assert 0 <= debt_v - 75_000 * E18 <= 75_000 * E18 * 3 * 60 // (100 * YEAR) + 1
    assert 0 <= debt_s - 500_000 * E6 <= 500_000 * E6 * 8 * 60 // (100 * YEAR) + 1
    delta = x.pos.functions.delta().call()
    # neutral at `open` up to the LP's rounding (~1e-13 AVAX), then short by the interest accrued since
    assert -(debt_v - 75_000 * E18) - 10**6 < delta <= 0

    state = _latest_state(w3, x)
    pos = position(state)
    # position() marks the LP share exactly; the contract (like simulate()) floors the LP's token amounts
    assert abs(pos.leverage - Fraction(lev, WAD)) < Fraction(1, 10**9)
    assert pos.delta.__floor__() == delta
    assert state.price == Fraction(20 * E6, E18)
    assert triggers(state, LyfRules(), state.price).fired is False

    # farm: ≈ 20% a year on the position's ≈ $3M of LP
    rate = x.farm.functions.rewardPerSecond().call()
    assert 1_990 <= rate * YEAR * 10_000 // (3_000_000 * E6) <= 2_000


# ---- UniPair ------------------------------------------------------------------------------------------


def test_pair_swap_fee_and_invariant_match_hand_computation(w3: Web3, lyf: Lyf, chain: Any) -> None:
    x, owner, trader = lyf, lyf.d.owner, lyf.d.arbitrageur
    r0, r1, _ = x.pair.functions.getReserves().call()
    amount_in = 10_000 * E6  # USDC in, AVAX out
    out = amount_in * 997 * r0 // (r1 * 1000 + amount_in * 997)
    assert 497 * E18 < out < 498 * E18  # $20: 10,000 USDC buys 500 AVAX less 0.3% fee and 0.15% impact
    send(w3, x.usdc.functions.mint(trader, amount_in), owner)
    send(w3, x.usdc.functions.transfer(x.d.pair, amount_in), trader)
    # One unit more than the fee allows breaks K: (b0·1000)·(b1·1000 − in·3) < r0·r1·1000².
    assert revert_of(x.pair.functions.swap(out + 1, 0, trader, b""), trader) == ("KInvariant", ())
    assert revert_of(x.pair.functions.swap(0, 0, trader, b""), trader) == ("InsufficientOutputAmount", ())
    assert revert_of(x.pair.functions.swap(out, 0, x.d.volatile, b""), trader) == ("InvalidTo", ())
    receipt = send(w3, x.pair.functions.swap(out, 0, trader, b""), trader)
    (event,) = x.pair.events.Swap().process_receipt(receipt, errors=DISCARD)
    assert (event.args.amount0In, event.args.amount1In, event.args.amount0Out, event.args.amount1Out) == (
        0,
        amount_in,
        out,
        0,
    )
    (sync,) = x.pair.events.Sync().process_receipt(receipt, errors=DISCARD)
    assert (sync.args.reserve0, sync.args.reserve1) == (r0 - out, r1 + amount_in)
    assert x.avax.functions.balanceOf(trader).call() == out
    n0, n1, _ = x.pair.functions.getReserves().call()
    assert (n0, n1) == (r0 - out, r1 + amount_in)
    assert n0 * n1 > r0 * r1  # the fee stays in the pool
    # Nothing in: the K check sees no input.
    assert revert_of(x.pair.functions.swap(1, 0, trader, b""), trader) == ("InsufficientInputAmount", ())


def test_pair_mint_and_burn_pro_rata(w3: Web3, lyf: Lyf, chain: Any) -> None:
    x, owner, lp = lyf, lyf.d.owner, lyf.d.liquidity_provider
    r0, r1, _ = x.pair.functions.getReserves().call()
    supply = x.pair.functions.totalSupply().call()
    # Unbalanced deposit: liquidity = min(a·S/r0, b·S/r1); the excess is donated to the pool.
    a, b = 1_000 * E18, 30_000 * E6
    send(w3, x.avax.functions.mint(x.d.pair, a), owner)
    send(w3, x.usdc.functions.mint(x.d.pair, b), owner)
    before = x.pair.functions.balanceOf(lp).call()
    receipt = send(w3, x.pair.functions.mint(lp), lp)
    minted = x.pair.functions.balanceOf(lp).call() - before
    assert minted == min(a * supply // r0, b * supply // r1) == a * supply // r0
    (mint_event,) = x.pair.events.Mint().process_receipt(receipt, errors=DISCARD)
    assert (mint_event.args.amount0, mint_event.args.amount1) == (a, b)

    r0, r1, _ = x.pair.functions.getReserves().call()
    supply = x.pair.functions.totalSupply().call()
    burn = minted // 3
    v_before, s_before = x.avax.functions.balanceOf(lp).call(), x.usdc.functions.balanceOf(lp).call()
    send(w3, x.pair.functions.transfer(x.d.pair, burn), lp)
    send(w3, x.pair.functions.burn(lp), lp)
    assert x.avax.functions.balanceOf(lp).call() - v_before == burn * r0 // supply
    assert x.usdc.functions.balanceOf(lp).call() - s_before == burn * r1 // supply
    assert x.pair.functions.totalSupply().call() == supply - burn
    assert revert_of(x.pair.functions.burn(lp), lp) == ("InsufficientLiquidityBurned", ())


# ---- LyfLender ----------------------------------------------------------------------------------------


def test_interest_accrues_on_both_debts(w3: Web3, lyf: Lyf, anvil: Anvil, chain: Any) -> None:
    x, owner, borrower = lyf, lyf.d.owner, Web3.to_checksum_address(lyf.d.lender_account)
    assets = ((x.avax, "AVAX", 1_000 * E18), (x.usdc, "USDC", 100_000 * E6))
    assert revert_of(x.lender.functions.borrow(x.d.volatile, 1), borrower) == ("NotBorrower", (borrower,))
    send(w3, x.lender.functions.allowBorrower(borrower, True), owner)
    touched: dict[str, tuple[int, int]] = {}  # asset -> (timestamp, index) of its reserve's last update
    for token, sym, amount in assets:
        receipt = send(w3, x.lender.functions.borrow(token.address, amount), borrower)
        block = receipt["blockNumber"]
        index = x.lender.functions.indexOf(token.address).call(block_identifier=block)
        touched[sym] = (w3.eth.get_block(block)["timestamp"], index)
    block1 = w3.eth.block_number
    index1 = {sym: x.lender.functions.indexOf(t.address).call(block_identifier=block1) for t, sym, _ in assets}
    pos_debts1 = x.pos.functions.debts().call(block_identifier=block1)

    _age(anvil, YEAR)
    t2 = w3.eth.get_block("latest")["timestamp"]
    for i, (token, sym, amount) in enumerate(assets):
        rate = int(RATES[sym] * RAY)
        assert x.lender.functions.rateOf(token.address).call() == rate
        index2 = x.lender.functions.indexOf(token.address).call()
        t_borrow, index_borrow = touched[sym]
        # linear between updates: index × (1 + rate × dt / year), rounded down
        assert index2 == index_borrow * (RAY + rate * (t2 - t_borrow) // YEAR) // RAY
        # the borrower's debt: ceil(principal × index / index at the borrow)
        assert x.lender.functions.debtOf(borrower, token.address).call() == -(-amount * index2 // index_borrow)
        # the position's debt (borrowed at `open`) grows like the index from block1 on
        grown = Fraction(x.pos.functions.debts().call()[i], pos_debts1[i])
        assert abs(grown - Fraction(index2, index1[sym])) < Fraction(1, 10**10)  # debts round up to a unit
        assert Fraction(index2, index1[sym]) > 1 + RATES[sym] * Fraction(99, 100)

    # repay: exact amount; more than the debt pays the debt
    send(w3, x.usdc.functions.mint(borrower, 200_000 * E6), owner)
    send(w3, x.usdc.functions.approve(x.d.lender, MAX), borrower)
    latest = w3.eth.get_block("latest")
    t_debt = latest["timestamp"]
    debt = x.lender.functions.debtOf(borrower, x.d.stable).call(block_identifier=latest["number"])
    receipt = send(w3, x.lender.functions.repay(x.d.stable, 50_000 * E6), borrower)
    (repaid,) = x.lender.events.Repaid().process_receipt(receipt, errors=DISCARD)
    remaining = x.lender.functions.debtOf(borrower, x.d.stable).call()
    assert repaid.args.amount == 50_000 * E6 and repaid.args.debtAfter == remaining
    seconds = w3.eth.get_block(receipt["blockNumber"])["timestamp"] - t_debt
    # the repay block's interest since the read: ≤ 8% a year on ~108k USDC per second, rounded up
    assert 0 <= remaining - (debt - 50_000 * E6) <= seconds * debt * 8 // 100 // YEAR + 1
    send(w3, x.lender.functions.repay(x.d.stable, MAX), borrower)
    assert x.lender.functions.debtOf(borrower, x.d.stable).call() == 0
    assert revert_of(x.lender.functions.setRate(x.d.stable, 0), borrower) == ("NotOwner", (borrower,))


# ---- LyfFarm ------------------------------------------------------------------------------------------


def test_farm_rewards_accrue_pro_rata_and_claim(w3: Web3, lyf: Lyf, anvil: Anvil, chain: Any) -> None:
    x, lp = lyf, lyf.d.liquidity_provider
    stake = x.pair.functions.balanceOf(lp).call() // 10
    send(w3, x.pair.functions.approve(x.d.farm, MAX), lp)
    send(w3, x.farm.functions.stake(stake), lp)
    rate = x.farm.functions.rewardPerSecond().call()
    total = x.farm.functions.totalStaked().call()
    stored = x.farm.functions.rewardPerShareStored().call()
    start = x.farm.functions.lastUpdateTime().call()
    assert x.farm.functions.pendingRewards(lp).call() == 0
    pos_pending0 = x.pos.functions.pendingRewards().call()

    _age(anvil, 7 * 86_400)
    now = w3.eth.get_block("latest")["timestamp"]
    per_share = stored + (now - start) * rate * 10**30 // total
    assert x.farm.functions.pendingRewards(lp).call() == stake * (per_share - stored) // 10**30
    pos_stake = x.farm.functions.balanceOf(x.d.position).call()
    pos_gain = x.pos.functions.pendingRewards().call() - pos_pending0
    assert abs(pos_gain - pos_stake * (per_share - stored) // 10**30) <= 1
    # pro rata: both shares of a week's rewards add up to rate × dt (up to rounding)
    assert rate * (now - start) - 2 <= pos_gain + x.farm.functions.pendingRewards(lp).call() <= rate * (now - start)

    receipt = send(w3, x.farm.functions.claim(), lp)
    paid_at = w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    expected = stake * ((paid_at - start) * rate * 10**30 // total) // 10**30
    assert x.usdc.functions.balanceOf(lp).call() == expected
    assert x.farm.functions.pendingRewards(lp).call() == 0
    send(w3, x.farm.functions.withdraw(stake), lp)
    assert revert_of(x.farm.functions.withdraw(1), lp) == ("InsufficientStake", (lp, 0, 1))


# ---- LyfPosition: access ------------------------------------------------------------------------------


def test_rebalance_is_keeper_only_and_expires(w3: Web3, lyf: Lyf, chain: Any) -> None:
    x, owner, keeper = lyf, lyf.d.owner, lyf.d.keeper
    deadline = _deadline(w3)
    assert revert_of(x.pos.functions.rebalance(0, 0, 0, 0, 0, deadline), owner) == ("NotKeeper", (owner,))
    past = deadline - 601  # an eth_call at "latest" runs at the latest block's timestamp (= deadline − 600)
    name, args = revert_of(x.pos.functions.rebalance(0, 0, 0, 0, 0, past), keeper)
    assert name == "Expired" and args[0] == past and args[1] > args[0]
    assert revert_of(x.pos.functions.setBounds(0, 1, 1), keeper) == ("NotOwner", (keeper,))
    assert revert_of(x.pos.functions.open(1, 30_000), keeper) == ("NotOwner", (keeper,))
    assert revert_of(x.pos.functions.setBounds(2, 1, 1), owner) == ("InvalidBounds", ())
    # An empty rebalance (claim only) at 3.00× and neutral is within the bounds (|delta| grows by the
    # volatile interest since `open`, ~7e13 units a second: allow 1 AVAX here).
    send(w3, x.pos.functions.setBounds(29_000, 31_000, E18), owner)
    send(w3, x.pos.functions.rebalance(0, 0, 0, 0, 0, deadline), keeper)


# ---- LyfPosition: planner-driven rebalances -----------------------------------------------------------


def _send_at(w3: Web3, anvil: Anvil, fn: Any, sender: str, timestamp: int) -> TxReceipt:
    """Mine `fn` in a block stamped `timestamp` (anvil accepts the latest block's own timestamp).

    Gas is given explicitly: eth_estimateGas would simulate at the node's clock, not at `timestamp`.
    """
    rpc(anvil.url, "evm_setNextBlockTimestamp", [timestamp])
    receipt = w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender, "gas": GAS_LIMIT}))
    assert receipt["status"] == 1, "reverted"
    assert w3.eth.get_block(receipt["blockNumber"])["timestamp"] == timestamp
    return receipt


def _read_latest(w3: Web3, x: Lyf) -> tuple[LyfState, int]:
    block = w3.eth.get_block("latest")
    return read_lyf_state(w3, x.d, block["number"]), int(block["timestamp"])


# One block later than the read, at a 12-second block time (an Ethereum slot; Avalanche's is ~2 s): the
# plan is made from the read block's state with the debts and rewards projected to this timestamp.
LAG = 12


def _lender_position(x: Lyf, block: int, at: int) -> tuple[int, int, int]:
    """(volatile debt, stable debt, pending rewards) the position will have at `at`, seen from `block`."""
    debt_v, debt_s = x.pos.functions.debtsAt(at).call(block_identifier=block)
    return debt_v, debt_s, x.pos.functions.pendingRewardsAt(at).call(block_identifier=block)


def test_rebalance_after_price_rise_reaches_target_in_one_transaction(
    w3: Web3, lyf: Lyf, anvil: Anvil, chain: Any
) -> None:
    """+10% and 30 days of interest and rewards; read at block B (time t), planned for a transaction mined at
    t + LAG (debts and rewards projected with `debtsAt` / `pendingRewardsAt`), executed at t + LAG: it lands
    on 3.00× (at or just below) and neutral to the unit, exactly as `simulate()` predicted."""
    x, keeper = lyf, lyf.d.keeper
    last_price = _latest_state(w3, x).price
    move_price(w3, x.d, Fraction(11, 10))
    _age(anvil, 30 * 86_400)  # interest on both debts, farm rewards pending
    at_read, read_at = _read_latest(w3, x)
    block = w3.eth.block_number
    execute_at = read_at + LAG
    state = read_lyf_state(w3, x.d, block, execute_at=execute_at)
    # the projection is what the LAG seconds add: interest on both debts and the farm's rewards
    one_second_v = Fraction(at_read.debt_volatile) * RATES["AVAX"] / YEAR
    assert abs(state.debt_volatile - at_read.debt_volatile - LAG * one_second_v) < LAG * one_second_v / 100
    assert state.debt_stable > at_read.debt_stable and state.pending_rewards_stable > at_read.pending_rewards_stable
    assert state.pending_rewards_stable > 0
    before = position(state)
    assert before.leverage > Fraction(305, 100) and before.delta < 0  # drifted up, net short
    fired = triggers(state, LyfRules(), last_price)
    assert fired.fired and len(fired.reasons) == 2  # price moved 10%, delta beyond 2% (leverage in its band)

    p = plan(state, LyfRules())
    assert p.stable_to_swap > 0 and p.volatile_to_swap == 0
    assert p.repay_stable < 0  # the buy-back costs more stable than the removal frees: borrow the rest
    fn = x.pos.functions.rebalance(*_rebalance_args(p, execute_at + 600))
    receipt = _send_at(w3, anvil, fn, keeper, execute_at)
    gas = receipt["gasUsed"]
    lev = x.pos.functions.leverageWad().call()
    delta = x.pos.functions.delta().call()
    print(f"\nLYF rebalance +10%, {LAG} s after the read: gas {gas}, leverageWad {lev}, delta {delta}")
    assert gas < GAS_LIMIT  # the budget: 1.8M
    assert lev <= 3 * WAD  # never above target because of rounding
    assert abs(Fraction(lev, WAD) - 3) < Fraction(1, 10**6)
    assert abs(delta) <= 1  # LP volatile = volatile debt within one unit
    assert lev == p.final_leverage * WAD // 1 and delta == p.final_delta  # the chain reproduces simulate()
    debt_v, debt_s = x.pos.functions.debts().call()
    assert (debt_v, debt_s) == (state.debt_volatile - p.repay_volatile, state.debt_stable - p.repay_stable)
    (event,) = x.pos.events.Rebalanced().process_receipt(receipt, errors=DISCARD)
    assert (event.args.leverageWad, event.args.delta) == (lev, delta)
    assert event.args.swapOut == p.expected_out  # nobody traded between the read and the transaction
    assert x.pos.functions.pendingRewards().call() == 0  # claimed in the same transaction
    assert triggers(_latest_state(w3, x), LyfRules(), state.price).fired is False


def test_projection_views_match_the_later_block_and_refuse_the_past(
    w3: Web3, lyf: Lyf, anvil: Anvil, chain: Any
) -> None:
    """debtsAt / pendingRewardsAt at a later timestamp are what debts / pendingRewards read in the block mined
    then (nothing touched the lender or the farm in between); a past timestamp reverts."""
    x = lyf
    _age(anvil, 86_400)
    block = w3.eth.get_block("latest")
    projected = _lender_position(x, block["number"], block["timestamp"] + 100)
    rpc(anvil.url, "evm_setNextBlockTimestamp", [block["timestamp"] + 100])
    rpc(anvil.url, "evm_mine")
    assert (*x.pos.functions.debts().call(), x.pos.functions.pendingRewards().call()) == projected
    now = w3.eth.get_block("latest")["timestamp"]
    assert _lender_position(x, w3.eth.block_number, now) == projected  # at the block's own time: debtOf
    assert revert_of(x.pos.functions.debtsAt(now - 1), x.d.keeper) == ("PastTimestamp", (now - 1, now))
    assert revert_of(x.pos.functions.pendingRewardsAt(now - 1), x.d.keeper) == ("PastTimestamp", (now - 1, now))


def test_execution_later_than_planned_leaves_that_interest_as_delta(
    w3: Web3, lyf: Lyf, anvil: Anvil, chain: Any
) -> None:
    """The plan's repayments are fixed amounts: planned for t + LAG but mined one second later, the volatile
    debt has grown by one more second of interest (3%/year on ~70k AVAX ≈ 6.6e13 units) that the repayment
    misses, exactly `debtAt(t + LAG + 1) − debtAt(t + LAG)`; leverage moves by that second's interest net of
    its rewards, ≈ 3e-8 (see the bound below), far inside 1e-6."""
    x = lyf
    move_price(w3, x.d, Fraction(11, 10))
    _age(anvil, 30 * 86_400)
    _, read_at = _read_latest(w3, x)
    block = w3.eth.block_number
    planned_at, mined_at = read_at + LAG, read_at + LAG + 1
    state = read_lyf_state(w3, x.d, block, execute_at=planned_at)
    p = plan(state, LyfRules())
    dv_1, ds_1, rewards_1 = _lender_position(x, block, mined_at)
    missed_v, missed_s, extra_rewards = (dv_1 - state.debt_volatile, ds_1 - state.debt_stable,
                                         rewards_1 - state.pending_rewards_stable)
    _send_at(w3, anvil, x.pos.functions.rebalance(*_rebalance_args(p, planned_at + 600)), x.d.keeper, mined_at)
    lev = x.pos.functions.leverageWad().call()
    delta = x.pos.functions.delta().call()
    one_second = Fraction(state.debt_volatile) * RATES["AVAX"] / YEAR
    print(f"\nLYF rebalance +10%, 1 s later than planned: leverageWad {lev}, delta {delta} "
          f"(a second of interest {float(one_second):.4g})")
    assert abs(missed_v - one_second) < one_second / 100
    assert delta == p.final_delta - missed_v  # neutrality is off by exactly that second's interest
    # assets A and equity E after the plan; the second adds ΔL = missed_v·p + missed_s of debt and ΔR of rewards
    # (loose stable): d(A/E) = (ΔR·E − A·(ΔR − ΔL)) / E² to first order, so |Δlev| ≤ (ΔR·E + A·|ΔR − ΔL|)/E² · 1.01
    a = p.final_leverage  # = A/E; work per unit of E after the plan (E ≈ 1M USDC)
    equity = position(state).equity  # E before the plan; the rebalance costs only the swap's fee and impact
    d_liab = missed_v * state.price + missed_s
    bound = (extra_rewards + a * abs(extra_rewards - d_liab)) / equity * Fraction(102, 100)
    assert abs(Fraction(lev, WAD) - p.final_leverage) <= bound + Fraction(1, WAD)
    assert bound < Fraction(1, 10**7)
    assert abs(Fraction(lev, WAD) - 3) < Fraction(1, 10**6)


def test_the_reader_counts_loose_volatile_as_the_contract_does(w3: Web3, lyf: Lyf, anvil: Anvil, chain: Any) -> None:
    """A rebalance leaves the swap's dust as loose volatile. The reader puts it in the state, so the planner's
    leverage is the contract's to the last wei of 1e18, and the next rebalance, planned with the dust, still
    never ends above target."""
    x = lyf
    for step, move in enumerate((Fraction(11, 10), Fraction(108, 100))):
        move_price(w3, x.d, move)
        _age(anvil, 15 * 86_400)
        _, read_at = _read_latest(w3, x)
        state = read_lyf_state(w3, x.d, w3.eth.block_number, execute_at=read_at + LAG)
        if step == 1:
            assert state.loose_volatile == x.avax.functions.balanceOf(x.d.position).call() > 0
            now = read_lyf_state(w3, x.d, w3.eth.block_number)
            assert onchain_leverage(now) * WAD // 1 == x.pos.functions.leverageWad().call()
            without = replace(now, loose_volatile=0)
            assert onchain_leverage(without) * WAD // 1 != x.pos.functions.leverageWad().call()
        p = plan(state, LyfRules())
        _send_at(w3, anvil, x.pos.functions.rebalance(*_rebalance_args(p, read_at + 600)), x.d.keeper,
                 read_at + LAG)
        lev = x.pos.functions.leverageWad().call()
        assert lev == p.final_leverage * WAD // 1 <= 3 * WAD
        assert abs(Fraction(lev, WAD) - 3) < Fraction(1, 10**6)
        assert abs(x.pos.functions.delta().call()) <= 1


def test_rebalance_outside_bounds_reverts_with_decoded_errors(w3: Web3, lyf: Lyf, anvil: Anvil, chain: Any) -> None:
    x, owner, keeper = lyf, lyf.d.owner, lyf.d.keeper
    move_price(w3, x.d, Fraction(11, 10))
    _age(anvil, 30 * 86_400)
    p = plan(_latest_state(w3, x), LyfRules())
    args = _rebalance_args(p, _deadline(w3))

    send(w3, x.pos.functions.setBounds(29_000, 29_900, 10**15), owner)  # 3.00× is now above the maximum
    name, (lev, lo, hi) = revert_of(x.pos.functions.rebalance(*args), keeper)
    assert (name, lo, hi) == ("LeverageOutOfBounds", 29_000, 29_900)
    assert abs(Fraction(lev, WAD) - 3) < Fraction(1, 10**6)

    send(w3, x.pos.functions.setBounds(29_000, 31_000, 10**17), owner)
    short = (*args[:4], args[4] - 10**18, args[5])  # repay 1 AVAX less: the debt exceeds the LP's AVAX
    name, (delta,) = revert_of(x.pos.functions.rebalance(*short), keeper)
    # −1 AVAX, plus the volatile interest of the seconds between the read and this call (~7e13/s)
    assert name == "DeltaOutOfBounds" and -(10**18) - 10**16 < delta <= -(10**18) + 1

    greedy = (args[0], args[1], p.expected_out + 1, *args[3:])
    assert revert_of(x.pos.functions.rebalance(*greedy), keeper) == (
        "InsufficientOutput",
        (p.expected_out, p.expected_out + 1),
    )
    # A move in the wrong direction (a rise answered by selling volatile) leaves leverage out of bounds.
    state = _latest_state(w3, x)
    removed_volatile = p.lp_to_remove * state.reserve_volatile // state.lp_supply
    wrong = (p.lp_to_remove, -(removed_volatile // 2), 0, 0, 0, args[5])
    assert revert_of(x.pos.functions.rebalance(*wrong), keeper)[0] in ("LeverageOutOfBounds", "DeltaOutOfBounds")
    send(w3, x.pos.functions.rebalance(*args), keeper)  # the plan itself passes


def test_rebalance_after_price_fall_fixes_delta_below_target(w3: Web3, lyf: Lyf, anvil: Anvil, chain: Any) -> None:
    x, owner, keeper = lyf, lyf.d.owner, lyf.d.keeper
    move_price(w3, x.d, Fraction(92, 100))
    _age(anvil, 30 * 86_400)
    state = _latest_state(w3, x)
    before = position(state)
    assert before.leverage < Fraction(29, 10) and before.delta > 0  # fell: less levered, net long
    p = plan(state, LyfRules())
    assert p.volatile_to_swap > 0 and p.stable_to_swap == 0 and p.lp_to_remove > 0
    assert p.final_leverage < 3 and abs(p.final_delta) <= 1

    read_at = int(w3.eth.get_block("latest")["timestamp"])
    args = _rebalance_args(p, read_at + 600)
    assert revert_of(x.pos.functions.rebalance(*args), keeper)[0] == "LeverageOutOfBounds"  # below 2.90×
    floor_bps = int(p.final_leverage * 10_000) - 50
    rpc(anvil.url, "evm_setNextBlockTimestamp", [read_at])
    send(w3, x.pos.functions.setBounds(floor_bps, 31_000, 10**15), owner)
    receipt = _send_at(w3, anvil, x.pos.functions.rebalance(*args), keeper, read_at)
    lev = x.pos.functions.leverageWad().call()
    delta = x.pos.functions.delta().call()
    print(f"\nLYF rebalance (-8%): gas {receipt['gasUsed']}, leverageWad {lev}, delta {delta}, plan {p}")
    assert receipt["gasUsed"] < GAS_LIMIT
    assert abs(delta) <= 1
    assert lev == p.final_leverage * WAD // 1 and delta == p.final_delta
    assert Fraction(lev, WAD) < 3
