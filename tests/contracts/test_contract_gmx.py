"""GMX v1 devnet contracts: AUM, GLP mint/redeem pricing and fees, rewards."""

from __future__ import annotations

from typing import Any

from contract_errors import revert_of
from web3 import Web3

from keeper.devnet.anvil import rpc
from keeper.devnet.deploy import Deployment, send

MAX = 2**256 - 1


def hand_aum(c: Any, deployment: Deployment, maximise: bool) -> int:
    """AUM recomputed from the Vault's raw state, exactly as docs/contracts.md states it."""
    vault = c("Vault")
    aum = short_profits = 0
    for sym, token in deployment.tokens.items():
        price = vault.functions.getMaxPrice(token).call() if maximise else vault.functions.getMinPrice(token).call()
        pool = vault.functions.poolAmounts(token).call()
        unit = 10 ** vault.functions.tokenDecimals(token).call()
        if sym == "USDC":
            aum += pool * price // unit
            continue
        size = vault.functions.globalShortSizes(token).call()
        avg = vault.functions.globalShortAveragePrices(token).call()
        delta = size * abs(price - avg) // avg
        if price > avg:
            aum += delta
        else:
            short_profits += delta
        aum += vault.functions.guaranteedUsd(token).call()
        aum += (pool - vault.functions.reservedAmounts(token).call()) * price // unit
    return max(aum - short_profits, 0)


def test_seeded_pool_state(c: Any, deployment: Deployment) -> None:
    vault, manager, glp = c("Vault"), c("GlpManager"), c("GLP")
    weth = deployment.tokens["WETH"]
    assert vault.functions.getMinPrice(weth).call() == 3_000 * 10**30
    assert vault.functions.poolAmounts(deployment.tokens["USDC"]).call() >= 50_000_000 * 10**6
    assert vault.functions.reservedAmounts(weth).call() == 3_000 * 10**18
    assert vault.functions.globalShortSizes(weth).call() == 10_000_000 * 10**30
    assert vault.functions.mintBurnFeeBasisPoints().call() == 30
    assert vault.functions.allWhitelistedTokensLength().call() == 3
    assert manager.functions.cooldownDuration().call() == 0
    price = manager.functions.getPrice(False).call()
    assert 99 * 10**28 < price < 102 * 10**28  # GLP ≈ $1
    assert price == manager.functions.getAum(False).call() * 10**18 // glp.functions.totalSupply().call()
    # The Vault holds the tokens behind its accounting (pool + fees).
    for token in deployment.tokens.values():
        held = c("TestToken", token).functions.balanceOf(deployment.gmx_vault).call()
        assert held >= vault.functions.poolAmounts(token).call() + vault.functions.feeReserves(token).call()


def test_aum_formula_with_short_pnl_and_reserves(w3: Web3, deployment: Deployment, c: Any, chain: Any) -> None:
    manager = c("GlpManager")
    aum = manager.functions.getAum(False).call()
    assert aum == hand_aum(c, deployment, False) == manager.functions.getAum(True).call()
    # Shorts win at $3,000 (< avg $3,100): the pool owes them 10M × 100 / 3,100.
    eth_short_profit = 10_000_000 * 10**30 * (100 * 10**30) // (3_100 * 10**30)
    assert eth_short_profit == 322_580_645_161_290_322_580_645_161_290_322_580  # $322,580.645…
    # ETH to $3,410: ETH shorts lose 10M × 310 / 3,100 = $1M; longs' tokens (pool − reserved) gain.
    send(w3, c("feed:WETH").functions.setAnswer(3_410 * 10**8), deployment.owner)
    vault = c("Vault")
    weth = deployment.tokens["WETH"]
    net_eth = vault.functions.poolAmounts(weth).call() - vault.functions.reservedAmounts(weth).call()
    moved = manager.functions.getAum(False).call()
    assert moved == hand_aum(c, deployment, False)
    expected_change = eth_short_profit + 1_000_000 * 10**30 + net_eth * 410 * 10**30 // 10**18
    assert abs(moved - aum - expected_change) <= 2
    # A 20 bps spread: maximise uses p × 1.002, minimise p × 0.998.
    send(w3, vault.functions.setSpreadBasisPoints(weth, 20), deployment.owner)
    assert vault.functions.getMaxPrice(weth).call() == 3_410 * 10**30 * 10_020 // 10_000
    assert vault.functions.getMinPrice(weth).call() == 3_410 * 10**30 * 9_980 // 10_000
    assert manager.functions.getAum(True).call() == hand_aum(c, deployment, True)
    assert manager.functions.getAum(False).call() == hand_aum(c, deployment, False)
    assert manager.functions.getAums().call() == [hand_aum(c, deployment, True), hand_aum(c, deployment, False)]


def test_mint_and_redeem_pricing_and_fee(w3: Web3, deployment: Deployment, c: Any, chain: Any) -> None:
    owner, user = deployment.owner, deployment.treasury
    usdc, weth, glp, vault, manager, router = (
        c("USDC"),
        c("WETH"),
        c("GLP"),
        c("Vault"),
        c("GlpManager"),
        c("RewardRouterV2"),
    )
    amount = 30_000 * 10**6
    send(w3, usdc.functions.mint(user, amount), owner)
    send(w3, usdc.functions.approve(deployment.glp_manager, MAX), user)

    aum_usdg = manager.functions.getAumInUsdg(True).call()
    supply = glp.functions.totalSupply().call()
    fee_before = vault.functions.feeReserves(usdc.address).call()
    pool_before = vault.functions.poolAmounts(usdc.address).call()
    after_fee = amount * 9_970 // 10_000
    usdg = after_fee * 10**30 // 10**18  # $1 × 1e30, 6 + 12 decimals
    expected_glp = usdg * supply // aum_usdg
    assert router.functions.mintAndStakeGlp(usdc.address, amount, 0, 0).call({"from": user}) == expected_glp
    name, args = revert_of(router.functions.mintAndStakeGlp(usdc.address, amount, 0, expected_glp + 1), user)
    assert (name, args) == ("InsufficientGlpOutput", (expected_glp, expected_glp + 1))
    send(w3, router.functions.mintAndStakeGlp(usdc.address, amount, usdg, expected_glp), user)
    assert glp.functions.balanceOf(user).call() == expected_glp
    assert vault.functions.feeReserves(usdc.address).call() - fee_before == amount - after_fee == 90 * 10**6
    assert vault.functions.poolAmounts(usdc.address).call() - pool_before == after_fee

    # Redeem half into WETH at the max price, 30 bps fee kept in feeReserves.
    redeem = expected_glp // 2
    aum_usdg = manager.functions.getAumInUsdg(False).call()
    supply = glp.functions.totalSupply().call()
    usdg_out = redeem * aum_usdg // supply
    redemption = usdg_out * 10**30 // vault.functions.getMaxPrice(weth.address).call()
    out = redemption * 9_970 // 10_000
    fee_before = vault.functions.feeReserves(weth.address).call()
    pool_before = vault.functions.poolAmounts(weth.address).call()
    send(w3, router.functions.unstakeAndRedeemGlp(weth.address, redeem, out, user), user)
    assert weth.functions.balanceOf(user).call() == out
    assert 49 * 10**17 < out < 5 * 10**18  # ≈ $14,955 of ETH at $3,000
    assert vault.functions.feeReserves(weth.address).call() - fee_before == redemption - out
    assert pool_before - vault.functions.poolAmounts(weth.address).call() == redemption
    assert glp.functions.balanceOf(user).call() == expected_glp - redeem
    name, args = revert_of(router.functions.unstakeAndRedeemGlp(weth.address, 10**18, 10**30, user), user)
    assert name == "InsufficientOutput" and args[1] == 10**30


def test_rewards_accrue_over_time_and_pay_on_handle_rewards(
    w3: Web3, deployment: Deployment, c: Any, chain: Any
) -> None:
    owner, user = deployment.owner, deployment.treasury
    usdc, weth, glp, router = c("USDC"), c("WETH"), c("GLP"), c("RewardRouterV2")
    tpi = router.functions.tokensPerInterval().call()
    # ≈ 20% APR on the pool: tpi × year × $3,000 / AUM.
    aum = c("GlpManager").functions.getAum(False).call() // 10**30
    apr_bps = tpi * 31_536_000 * 3_000 * 10_000 // 10**18 // aum
    assert 1_900 <= apr_bps <= 2_010  # 20% at deployment, diluted by the seed mints

    send(w3, usdc.functions.mint(user, 100_000 * 10**6), owner)
    send(w3, usdc.functions.approve(deployment.glp_manager, MAX), user)
    send(w3, router.functions.mintAndStakeGlp(usdc.address, 100_000 * 10**6, 0, 0), user)
    balance = glp.functions.balanceOf(user).call()
    supply = glp.functions.totalSupply().call()
    start = router.functions.lastDistributionTime().call()
    assert router.functions.claimable(user).call() == 0

    rpc(chain.url, "evm_increaseTime", [86_400])
    rpc(chain.url, "evm_mine")
    now = w3.eth.get_block("latest")["timestamp"]
    per_token = tpi * (now - start) * 10**30 // supply
    expected = balance * per_token // 10**30
    assert router.functions.claimable(user).call() == expected
    assert expected > 0

    receipt = send(w3, router.functions.handleRewards(False, False, False, False, False, True, False), user)
    paid_at = w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    paid = balance * (tpi * (paid_at - start) * 10**30 // supply) // 10**30
    assert weth.functions.balanceOf(user).call() == paid
    assert router.functions.claimable(user).call() == 0
    # ≈ one day of 20% APR on ~$100k: $54.8 ≈ 0.0183 ETH.
    assert 17 * 10**15 < paid < 19 * 10**15
    assert revert_of(router.functions.setTokensPerInterval(1), user) == ("NotOwner", (user,))
