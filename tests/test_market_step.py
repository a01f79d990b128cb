"""`Market.step`: a whole market step (time, feeds, open interest, a deposit, a withdrawal request) lands in
ONE block, so a keeper reading the chain sees the state before the step or after it, never half of it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from keeper.devnet.market import Market


def test_a_market_step_is_one_block(w3: Any, deployment: Any, c: Any, chain: None) -> None:
    market = Market(w3, deployment)
    user = deployment.users[0]
    shares = market.shares(user, 0)
    assert shares > 0
    before = w3.eth.get_block("latest")
    vm = c("VaultManager", deployment.vault_manager)
    book_before = vm.functions.getBook(0).call()
    block = market.step(
        7200,
        {"WETH": Decimal("2850.5"), "WBTC": Decimal("61000")},
        [("WETH", Decimal(2500), Decimal(9_000_000), Decimal(3100))],
        deposit=(user, 0, 1_000 * 10**6),
        withdraw=(user, 0, shares // 20),
    )
    mined = w3.eth.get_block(block)
    # the mint and approve of the deposit's tokens come first (own blocks), then the step's single block
    assert block == w3.eth.block_number and block > before["number"]
    assert len(mined["transactions"]) == 2 + 3 + 2  # two feeds, three OI setters, deposit + withdrawal request
    assert mined["timestamp"] >= before["timestamp"] + 7200
    assert c("feed:WETH").functions.latestRoundData().call(block_identifier=block - 1)[1] != 285_050_000_000
    assert c("feed:WETH").functions.latestRoundData().call(block_identifier=block)[1] == 285_050_000_000
    assert c("feed:WBTC").functions.latestRoundData().call(block_identifier=block)[1] == 6_100_000_000_000
    book = vm.functions.getBook(0).call()
    assert book != book_before  # the deposit is pending and the request queued, in the same block
    assert market.shares(user, 0) < shares  # the requested shares left the user
    # automine is back on: an ordinary transaction mines on its own
    market.set_prices({"WETH": Decimal(3000)})
    assert w3.eth.block_number == block + 1


def test_the_lyf_price_move_and_its_arbitrage_join_the_steps_block(w3: Any, deployment: Any, anvil: Any,
                                                                    chain: None) -> None:
    """The AVAX feed update and the pool's arbitrage (transfer + swap) land in the market step's block: a keeper
    swap cannot come between the arbitrage's reserve read and its swap (that made the swap revert KInvariant)."""
    from fractions import Fraction

    from keeper.devnet.anvil import rpc
    from keeper.devnet.lyf import deploy_lyf, pool_price, price_step_calls

    snapshot = rpc(anvil.url, "evm_snapshot")
    try:
        lyf = deploy_lyf(w3)
        before = pool_price(w3, lyf)
        calls, (amount_in, amount_out) = price_step_calls(w3, lyf, Fraction(11, 10))
        assert [fn.fn_name for fn, _ in calls] == ["setAnswer", "transfer", "swap"]
        assert pool_price(w3, lyf) == before  # nothing sent yet (only the arbitrageur's funds, minted)
        block = Market(w3, deployment).step(7200, {"WETH": Decimal(3000)}, also=calls)
        assert len(w3.eth.get_block(block)["transactions"]) == 1 + 3
        assert amount_in > 0 and amount_out > 0
        after = pool_price(w3, lyf)
        assert before * Fraction(109, 100) < after <= before * Fraction(11, 10)  # arbitraged up to the new price
    finally:
        assert rpc(anvil.url, "evm_revert", [snapshot])
