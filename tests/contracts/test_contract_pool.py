"""Aave v3-compatible lending Pool: the v3 reserve views (getReserveData, getConfiguration bitmap), the
aToken / variable debt token balances, account data and health factor, LTV/HF checks, borrow caps, interest."""

from __future__ import annotations

from typing import Any

from contract_errors import revert_of
from web3 import Web3
from web3.contract import Contract

from keeper.chain.reader import decode_reserve_configuration
from keeper.devnet.anvil import rpc
from keeper.devnet.deploy import Deployment, send

MAX = 2**256 - 1
RAY = 10**27
YEAR = 365 * 24 * 3600
ZERO = "0x" + "0" * 40


def _fund(w3: Web3, c: Any, deployment: Deployment, user: str, *, sym: str, amount: int) -> None:
    token = c(sym)
    send(w3, token.functions.mint(user, amount), deployment.owner)
    send(w3, token.functions.approve(deployment.pool, MAX), user)


def _tokens(c: Any, asset: str) -> tuple[Contract, Contract]:
    """The reserve's aToken and variable debt token, resolved as the keeper does (getReserveData)."""
    data = c("Pool").functions.getReserveData(asset).call()
    return c("AToken", data[8]), c("VariableDebtToken", data[10])


def test_reserve_configuration_bitmap_and_reserve_data(c: Any, deployment: Deployment) -> None:
    pool = c("Pool")
    usdc, weth, wbtc = (deployment.tokens[s] for s in ("USDC", "WETH", "WBTC"))
    # Aave v3 bit layout, by hand: LTV 0-15, LT 16-31, bonus 32-47 (0), decimals 48-55, active 56,
    # borrowing enabled 58, borrow cap 80-115 (whole tokens).
    flags = (1 << 56) | (1 << 58)
    assert pool.functions.getConfiguration(usdc).call() == (7_500 | 7_800 << 16 | 6 << 48 | flags | 30_000_000 << 80,)
    assert pool.functions.getConfiguration(weth).call() == (8_000 | 8_300 << 16 | 18 << 48 | flags | 4_000 << 80,)
    decoded = [decode_reserve_configuration(pool.functions.getConfiguration(t).call()[0]) for t in (usdc, weth, wbtc)]
    assert [(x.ltv_bps, x.liquidation_threshold_bps, x.decimals, x.borrow_cap_tokens) for x in decoded] == [
        (7_500, 7_800, 6, 30_000_000),
        (8_000, 8_300, 18, 4_000),
        (7_300, 7_800, 8, 180),
    ]
    assert pool.functions.getReservesList().call() == [usdc, weth, wbtc]

    for reserve_id, (sym, asset, rate_pct) in enumerate((("USDC", usdc, 5), ("WETH", weth, 3), ("WBTC", wbtc, 2))):
        (config, liquidity_index, liquidity_rate, borrow_index, borrow_rate, stable_rate, updated_at, rid,
         a_token, stable_debt, debt_token, strategy, treasury, unbacked, isolation) = (
            pool.functions.getReserveData(asset).call())
        assert config == pool.functions.getConfiguration(asset).call()
        assert (liquidity_index, liquidity_rate, stable_rate) == (RAY, 0, 0)  # collateral earns nothing
        assert borrow_index >= RAY and borrow_rate == rate_pct * RAY // 100
        assert 0 < updated_at <= c("Multicall3").functions.getCurrentBlockTimestamp().call()
        assert rid == reserve_id
        assert (stable_debt, strategy, treasury, unbacked, isolation) == (ZERO, ZERO, 0, 0, 0)
        for token, prefix in ((c("AToken", a_token), "a"), (c("VariableDebtToken", debt_token), "variableDebt")):
            assert token.functions.UNDERLYING_ASSET_ADDRESS().call() == asset
            assert token.functions.POOL().call() == deployment.pool
            assert token.functions.decimals().call() == c(sym).functions.decimals().call()
            assert token.functions.symbol().call() == prefix + sym

    a_usdc, _ = _tokens(c, usdc)
    assert a_usdc.functions.balanceOf(deployment.risk_off).call() == 20_000_000 * 10**6
    vm_collateral = a_usdc.functions.balanceOf(deployment.vault_manager).call()
    assert a_usdc.functions.totalSupply().call() == 20_000_000 * 10**6 + vm_collateral
    assert pool.functions.getUserAccountData(deployment.risk_off).call()[5] == MAX  # no debt


def test_configuration_bounds_are_checked(c: Any, deployment: Deployment) -> None:
    pool, owner, usdc = c("Pool"), deployment.owner, deployment.tokens["USDC"]
    feed = deployment.feeds["USDC"]
    bad = [
        (usdc, feed, 8_000, 7_800, 0, 0),  # LTV above the liquidation threshold
        (usdc, feed, 7_500, 10_001, 0, 0),  # threshold above 100%
        (usdc, feed, 7_500, 7_800, 2**36, 0),  # borrow cap does not fit bits 80-115
        (usdc, feed, 7_500, 7_800, 0, 2**128),  # rate does not fit ReserveData's uint128
        (usdc, ZERO, 7_500, 7_800, 0, 0),  # no oracle
    ]
    for args in bad:
        assert revert_of(pool.functions.configureReserve(*args), owner) == ("InvalidReserveConfig", (usdc,))
    assert revert_of(pool.functions.setBorrowCap(usdc, 2**36), owner) == ("InvalidReserveConfig", (usdc,))
    assert revert_of(pool.functions.setBorrowRate(usdc, 2**128), owner) == ("InvalidReserveConfig", (usdc,))
    assert revert_of(pool.functions.getReserveData(owner), owner) == ("UnknownReserve", (owner,))
    assert revert_of(pool.functions.configureReserve(*bad[0]), deployment.users[0]) == (
        "NotOwner", (deployment.users[0],))


def test_health_factor_math_ltv_and_hf_checks(w3: Web3, deployment: Deployment, c: Any, chain: Any) -> None:
    pool, owner, user = c("Pool"), deployment.owner, deployment.users[1]
    usdc, weth = deployment.tokens["USDC"], deployment.tokens["WETH"]
    a_weth, _ = _tokens(c, weth)
    _, debt_usdc = _tokens(c, usdc)
    send(w3, pool.functions.setBorrowRate(usdc, 0), owner)  # exact numbers: no interest in this test
    _fund(w3, c, deployment, user, sym="WETH", amount=10 * 10**18)
    weth_supply = a_weth.functions.totalSupply().call()
    send(w3, pool.functions.supply(weth, 10 * 10**18, user, 0), user)
    assert a_weth.functions.balanceOf(user).call() == 10 * 10**18
    assert a_weth.functions.totalSupply().call() == weth_supply + 10 * 10**18
    # 10 ETH × $3,000 = $30,000 (8 decimals); no debt: HF = max uint.
    assert pool.functions.getUserAccountData(user).call() == [30_000 * 10**8, 0, 24_000 * 10**8, 8_300, 8_000, MAX]

    usdc_debt = debt_usdc.functions.totalSupply().call()
    send(w3, pool.functions.borrow(usdc, 10_000 * 10**6, 2, 0, user), user)
    assert debt_usdc.functions.balanceOf(user).call() == 10_000 * 10**6
    assert debt_usdc.functions.totalSupply().call() == usdc_debt + 10_000 * 10**6
    # HF by hand from the token balances and the LT in the configuration bitmap.
    lt = decode_reserve_configuration(pool.functions.getConfiguration(weth).call()[0]).liquidation_threshold_bps
    collateral_base = a_weth.functions.balanceOf(user).call() * 3_000 * 10**8 // 10**18
    debt_base = debt_usdc.functions.balanceOf(user).call() * 10**8 // 10**6
    hf = collateral_base * lt * 10**18 // (debt_base * 10_000)
    assert hf == 2_490_000_000_000_000_000
    assert pool.functions.getUserAccountData(user).call() == [
        30_000 * 10**8,
        10_000 * 10**8,
        14_000 * 10**8,
        8_300,
        8_000,
        hf,
    ]
    assert c("USDC").functions.balanceOf(user).call() == 10_000 * 10**6
    # Beyond the LTV: 24,001 > 30,000 × 80%.
    assert revert_of(pool.functions.borrow(usdc, 14_001 * 10**6, 2, 0, user), user) == (
        "LtvExceeded",
        (24_001 * 10**8, 24_000 * 10**8),
    )
    # ETH to $1,300: HF = 13,000 × 0.83 / 10,000 = 1.079; withdrawing 1 ETH would leave 0.9711.
    send(w3, c("feed:WETH").functions.setAnswer(1_300 * 10**8), owner)
    assert pool.functions.getUserAccountData(user).call()[5] == 1_079_000_000_000_000_000
    assert revert_of(pool.functions.withdraw(weth, 10**18, user), user) == (
        "HealthFactorTooLow",
        (971_100_000_000_000_000,),
    )
    # A partial repay and a withdraw the HF allows move both token balances by exactly the amounts.
    send(w3, c("USDC").functions.approve(deployment.pool, MAX), user)
    send(w3, pool.functions.repay(usdc, 4_000 * 10**6, 2, user), user)
    assert debt_usdc.functions.balanceOf(user).call() == 6_000 * 10**6
    assert debt_usdc.functions.totalSupply().call() == usdc_debt + 6_000 * 10**6
    send(w3, pool.functions.withdraw(weth, 10**18, user), user)
    assert a_weth.functions.balanceOf(user).call() == 9 * 10**18
    assert a_weth.functions.totalSupply().call() == weth_supply + 9 * 10**18
    assert pool.functions.getUserAccountData(user).call()[5] == 9 * 1_300 * 8_300 * 10**18 // (6_000 * 10_000)

    assert revert_of(pool.functions.borrow(usdc, 1, 1, 0, user), user) == ("NotSupported", ())
    assert revert_of(pool.functions.borrow(usdc, 1, 2, 0, owner), user) == ("NotSupported", ())
    assert revert_of(pool.functions.supply(user, 1, user, 0), user) == ("UnknownReserve", (user,))
    assert revert_of(pool.functions.setBorrowCap(usdc, 1), user) == ("NotOwner", (user,))


def test_borrow_cap(w3: Web3, deployment: Deployment, c: Any, chain: Any) -> None:
    pool, owner, user = c("Pool"), deployment.owner, deployment.users[1]
    wbtc, weth = deployment.tokens["WBTC"], deployment.tokens["WETH"]
    _, debt_wbtc = _tokens(c, wbtc)
    send(w3, pool.functions.setBorrowRate(wbtc, 0), owner)  # freezes the reserve's total debt
    total = debt_wbtc.functions.totalSupply().call()
    assert total > 4 * 10**8  # the VaultManager's WBTC shorts
    assert total == debt_wbtc.functions.balanceOf(deployment.vault_manager).call()  # the only borrower so far
    cap = total // 10**8 + 1
    send(w3, pool.functions.setBorrowCap(wbtc, cap), owner)
    assert decode_reserve_configuration(pool.functions.getConfiguration(wbtc).call()[0]).borrow_cap_tokens == cap
    _fund(w3, c, deployment, user, sym="WETH", amount=100 * 10**18)
    send(w3, pool.functions.supply(weth, 100 * 10**18, user, 0), user)
    assert revert_of(pool.functions.borrow(wbtc, 10**8, 2, 0, user), user) == (
        "BorrowCapExceeded",
        (wbtc, total + 10**8, cap * 10**8),
    )
    headroom = cap * 10**8 - total
    send(w3, pool.functions.borrow(wbtc, headroom, 2, 0, user), user)
    assert debt_wbtc.functions.balanceOf(user).call() == headroom
    assert debt_wbtc.functions.totalSupply().call() == cap * 10**8  # every borrower counts against the cap
    assert revert_of(pool.functions.borrow(wbtc, 1, 2, 0, user), user)[0] == "BorrowCapExceeded"
    send(w3, pool.functions.setBorrowCap(wbtc, 0), owner)  # 0 = no cap
    send(w3, pool.functions.borrow(wbtc, 10**8, 2, 0, user), user)


def test_interest_accrues_through_the_index(w3: Web3, deployment: Deployment, c: Any, chain: Any) -> None:
    pool, user = c("Pool"), deployment.users[1]
    usdc, weth = deployment.tokens["USDC"], deployment.tokens["WETH"]
    _, debt_usdc = _tokens(c, usdc)
    _fund(w3, c, deployment, user, sym="WETH", amount=10 * 10**18)
    send(w3, pool.functions.supply(weth, 10 * 10**18, user, 0), user)
    receipt = send(w3, pool.functions.borrow(usdc, 10_000 * 10**6, 2, 0, user), user)
    at = {"block_identifier": receipt["blockNumber"]}
    start = w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    index0 = pool.functions.getReserveNormalizedVariableDebt(usdc).call(**at)
    data0 = pool.functions.getReserveData(usdc).call(**at)
    assert (data0[3], data0[6]) == (index0, start)  # the borrow updated the stored index and timestamp
    total0 = debt_usdc.functions.totalSupply().call(**at)
    assert debt_usdc.functions.balanceOf(user).call(**at) == 10_000 * 10**6

    rpc(chain.url, "evm_increaseTime", [YEAR])
    rpc(chain.url, "evm_mine")
    now = w3.eth.get_block("latest")["timestamp"]
    index1 = index0 * (RAY + 5 * RAY // 100 * (now - start) // YEAR) // RAY
    assert pool.functions.getReserveNormalizedVariableDebt(usdc).call() == index1
    assert pool.functions.getReserveData(usdc).call()[3] == index0  # stored index: unchanged until touched
    debt = debt_usdc.functions.balanceOf(user).call()
    assert debt == -(-10_000 * 10**6 * index1 // index0)  # rounds up against the borrower
    assert abs(debt - 10_500 * 10**6) < 10**6  # 5% a year, ± a few seconds
    assert debt_usdc.functions.totalSupply().call() == -(-total0 * index1 // index0)  # the total accrues too
    assert pool.functions.debtOf(user, usdc).call() == debt  # the ledger view VaultManager reads agrees

    # Repay everything with type(uint256).max.
    _fund(w3, c, deployment, user, sym="USDC", amount=1_000 * 10**6)
    before = c("USDC").functions.balanceOf(user).call()
    send(w3, pool.functions.repay(usdc, MAX, 2, user), user)
    assert debt_usdc.functions.balanceOf(user).call() == 0
    paid = before - c("USDC").functions.balanceOf(user).call()
    assert debt <= paid <= debt + 10**3  # one more second of interest at most
    assert pool.functions.getUserAccountData(user).call()[5] == MAX
