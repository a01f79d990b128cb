"""TestToken, PriceFeed (Chainlink) and Multicall3 against anvil."""

from __future__ import annotations

from typing import Any

from contract_errors import decode_error, revert_of
from web3 import Web3

from keeper.devnet.deploy import Deployment, send


def test_token_mint_is_owner_only_and_transfer_checks_balance(
    w3: Web3, deployment: Deployment, c: Any, chain: Any
) -> None:
    usdc = c("USDC")
    user = deployment.users[0]
    assert usdc.functions.decimals().call() == 6
    assert revert_of(usdc.functions.mint(user, 1), user) == ("NotOwner", (user,))
    balance = usdc.functions.balanceOf(user).call()
    assert revert_of(usdc.functions.transfer(deployment.owner, balance + 1), user) == (
        "InsufficientBalance",
        (user, balance, balance + 1),
    )
    send(w3, usdc.functions.mint(user, 5_000_000), deployment.owner)
    send(w3, usdc.functions.transfer(deployment.treasury, 2_000_000), user)
    assert usdc.functions.balanceOf(user).call() == balance + 3_000_000
    name, args = revert_of(usdc.functions.transferFrom(user, deployment.owner, 1), deployment.treasury)
    assert (name, args) == ("InsufficientAllowance", (deployment.treasury, 0, 1))


def test_feed_round_data_and_stale_updates(w3: Web3, deployment: Deployment, c: Any, chain: Any) -> None:
    feed = c("feed:WETH")
    assert feed.functions.decimals().call() == 8
    assert feed.functions.description().call() == "ETH / USD"
    round_id, answer, started, updated, answered = feed.functions.latestRoundData().call()
    assert answer == 3_000 * 10**8 and answered == round_id and started == updated

    receipt = send(w3, feed.functions.setAnswer(3_150 * 10**8), deployment.owner)
    block_time = w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    latest = feed.functions.latestRoundData().call()
    assert latest == [round_id + 1, 3_150 * 10**8, block_time, block_time, round_id + 1]

    stale_time = block_time - 7_200  # two hours old: a keeper with a 1 h heartbeat must reject it
    send(w3, feed.functions.setRoundData(3_100 * 10**8, stale_time), deployment.owner)
    latest = feed.functions.latestRoundData().call()
    assert latest == [round_id + 2, 3_100 * 10**8, stale_time, stale_time, round_id + 2]
    # History stays readable; unknown rounds revert.
    assert feed.functions.getRoundData(round_id + 1).call()[1] == 3_150 * 10**8
    assert revert_of(feed.functions.getRoundData(round_id + 3), deployment.owner) == (
        "NoDataPresent",
        (round_id + 3,),
    )
    assert revert_of(feed.functions.setAnswer(1), deployment.keeper) == ("NotOwner", (deployment.keeper,))


def test_multicall_aggregate3_with_allow_failure(w3: Web3, deployment: Deployment, c: Any, chain: Any) -> None:
    mc, usdc = c("Multicall3"), c("USDC")
    user = deployment.users[0]
    balance_call = usdc.functions.balanceOf(deployment.gmx_vault)._encode_transaction_data()
    failing_call = usdc.functions.mint(user, 1)._encode_transaction_data()  # the multicall is not the owner
    results = mc.functions.aggregate3([(usdc.address, False, balance_call), (usdc.address, True, failing_call)]).call()
    expected_balance = usdc.functions.balanceOf(deployment.gmx_vault).call()
    assert results[0][0] is True
    assert int.from_bytes(results[0][1], "big") == expected_balance
    assert results[1][0] is False
    assert decode_error(results[1][1]) == ("NotOwner", (mc.address,))

    name, args = revert_of(mc.functions.aggregate3([(usdc.address, False, failing_call)]), user)
    assert name == "CallFailed" and args[0] == 0
    assert decode_error(args[1]) == ("NotOwner", (mc.address,))

    block = w3.eth.get_block("latest")
    assert mc.functions.getBlockNumber().call() == block["number"]
    assert mc.functions.getCurrentBlockTimestamp().call() == block["timestamp"]
    assert mc.functions.getEthBalance(user).call() == w3.eth.get_balance(user)
