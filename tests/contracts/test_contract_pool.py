"""Aave-style lending Pool: account data and health factor, LTV/HF checks, borrow caps, interest."""

from __future__ import annotations

from typing import Any

from contract_errors import revert_of
from web3 import Web3

from keeper.devnet.anvil import rpc
from keeper.devnet.deploy import Deployment, send

MAX = 2**256 - 1
RAY = 10**27
YEAR = 365 * 24 * 3600


def _fund(w3: Web3, c: Any, deployment: Deployment, user: str, *, sym: str, amount: int) -> None:
    token = c(sym)
    send(w3, token.functions.mint(user, amount), deployment.owner)
    send(w3, token.functions.approve(deployment.pool, MAX), user)


def test_reserves_configuration(c: Any, deployment: Deployment) -> None:
    pool = c("Pool")
    usdc, weth, wbtc = (deployment.tokens[s] for s in ("USDC", "WETH", "WBTC"))
    assert [pool.functions.ltvOf(t).call() for t in (usdc, weth, wbtc)] == [7_500, 8_000, 7_300]
    assert [pool.functions.liquidationThreshold(t).call() for t in (usdc, weth, wbtc)] == [7_800, 8_300, 7_800]
    assert pool.functions.variableBorrowRate(usdc).call() == 5 * RAY // 100
    assert pool.functions.feedOf(weth).call() == deployment.feeds["WETH"]
    assert pool.functions.collateralOf(deployment.risk_off, usdc).call() == 20_000_000 * 10**6
    assert pool.functions.getUserAccountData(deployment.risk_off).call()[5] == MAX  # no debt


def test_health_factor_math_ltv_and_hf_checks(w3: Web3, deployment: Deployment, c: Any, chain: Any) -> None:
    pool, owner, user = c("Pool"), deployment.owner, deployment.users[1]
    usdc, weth = deployment.tokens["USDC"], deployment.tokens["WETH"]
    send(w3, pool.functions.setBorrowRate(usdc, 0), owner)  # exact numbers: no interest in this test
    _fund(w3, c, deployment, user, sym="WETH", amount=10 * 10**18)
    send(w3, pool.functions.supply(weth, 10 * 10**18, user, 0), user)
    # 10 ETH × $3,000 = $30,000 (8 decimals); no debt: HF = max uint.
    assert pool.functions.getUserAccountData(user).call() == [30_000 * 10**8, 0, 24_000 * 10**8, 8_300, 8_000, MAX]

    send(w3, pool.functions.borrow(usdc, 10_000 * 10**6, 2, 0, user), user)
    hf = 30_000 * 10**8 * 8_300 * 10**18 // (10_000 * 10**8 * 10_000)
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
    assert revert_of(pool.functions.borrow(usdc, 1, 1, 0, user), user) == ("NotSupported", ())
    assert revert_of(pool.functions.borrow(usdc, 1, 2, 0, owner), user) == ("NotSupported", ())
    assert revert_of(pool.functions.supply(user, 1, user, 0), user) == ("UnknownReserve", (user,))
    assert revert_of(pool.functions.setBorrowCap(usdc, 1), user) == ("NotOwner", (user,))


def test_borrow_cap(w3: Web3, deployment: Deployment, c: Any, chain: Any) -> None:
    pool, owner, user = c("Pool"), deployment.owner, deployment.users[1]
    wbtc, weth = deployment.tokens["WBTC"], deployment.tokens["WETH"]
    send(w3, pool.functions.setBorrowRate(wbtc, 0), owner)  # freezes the reserve's total debt
    total = pool.functions.totalDebtOf(wbtc).call()
    assert total > 4 * 10**8  # the VaultManager's WBTC shorts
    cap = total // 10**8 + 1
    send(w3, pool.functions.setBorrowCap(wbtc, cap), owner)
    assert pool.functions.borrowCap(wbtc).call() == cap
    _fund(w3, c, deployment, user, sym="WETH", amount=100 * 10**18)
    send(w3, pool.functions.supply(weth, 100 * 10**18, user, 0), user)
    assert revert_of(pool.functions.borrow(wbtc, 10**8, 2, 0, user), user) == (
        "BorrowCapExceeded",
        (wbtc, total + 10**8, cap * 10**8),
    )
    headroom = cap * 10**8 - total
    send(w3, pool.functions.borrow(wbtc, headroom, 2, 0, user), user)
    assert pool.functions.debtOf(user, wbtc).call() == headroom
    send(w3, pool.functions.setBorrowCap(wbtc, 0), owner)  # 0 = no cap
    send(w3, pool.functions.borrow(wbtc, 10**8, 2, 0, user), user)


def test_interest_accrues_through_the_index(w3: Web3, deployment: Deployment, c: Any, chain: Any) -> None:
    pool, user = c("Pool"), deployment.users[1]
    usdc, weth = deployment.tokens["USDC"], deployment.tokens["WETH"]
    _fund(w3, c, deployment, user, sym="WETH", amount=10 * 10**18)
    send(w3, pool.functions.supply(weth, 10 * 10**18, user, 0), user)
    receipt = send(w3, pool.functions.borrow(usdc, 10_000 * 10**6, 2, 0, user), user)
    start = w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    index0 = pool.functions.getReserveNormalizedVariableDebt(usdc).call(block_identifier=receipt["blockNumber"])
    assert pool.functions.debtOf(user, usdc).call(block_identifier=receipt["blockNumber"]) == 10_000 * 10**6

    rpc(chain.url, "evm_increaseTime", [YEAR])
    rpc(chain.url, "evm_mine")
    now = w3.eth.get_block("latest")["timestamp"]
    index1 = index0 * (RAY + 5 * RAY // 100 * (now - start) // YEAR) // RAY
    assert pool.functions.getReserveNormalizedVariableDebt(usdc).call() == index1
    debt = pool.functions.debtOf(user, usdc).call()
    assert debt == -(-10_000 * 10**6 * index1 // index0)  # rounds up against the borrower
    assert abs(debt - 10_500 * 10**6) < 10**6  # 5% a year, ± a few seconds

    # Repay everything with type(uint256).max.
    _fund(w3, c, deployment, user, sym="USDC", amount=1_000 * 10**6)
    before = c("USDC").functions.balanceOf(user).call()
    send(w3, pool.functions.repay(usdc, MAX, 2, user), user)
    assert pool.functions.debtOf(user, usdc).call() == 0
    paid = before - c("USDC").functions.balanceOf(user).call()
    assert debt <= paid <= debt + 10**3  # one more second of interest at most
    assert pool.functions.getUserAccountData(user).call()[5] == MAX
