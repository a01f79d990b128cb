"""VaultManager: books, deposits and the withdrawal queue, harvest, the rebalance order checks, and the
per-leg surplus crediting checked against the pure model (`keeper.net`) on a real snapshot."""

from __future__ import annotations

from typing import Any

from contract_errors import revert_of
from web3 import Web3
from web3.logs import DISCARD

from keeper.chain.reader import Addresses, SnapshotReader
from keeper.devnet.anvil import rpc
from keeper.devnet.deploy import Deployment, send
from keeper.net import ExecutedLeg, VaultChange, apply_order, net_changes, oracle_from_snapshot, order_abi

USD = 10**30
N = 3  # assets: USDC, WETH, WBTC


def _on(asset: int, glp: int) -> list[int]:
    """A `deltas.glp` vector: `glp` through the leg in `asset`, 0 elsewhere."""
    out = [0] * N
    out[asset] = glp
    return out


def _deadline(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"]) + 3_600


def _order(
    w3: Web3,
    legs: list[tuple[int, int, int]] | None = None,
    deltas: list[tuple[int, list[int], list[int], list[int], list[int]]] | None = None,
    *,
    supply: list[int] | None = None,
    borrow: list[int] | None = None,
    interest: list[int] | None = None,
    process: list[int] | None = None,
    flags: int = 0,
    deadline: int | None = None,
) -> tuple[Any, ...]:
    zero = [0] * N
    return (
        _deadline(w3) if deadline is None else deadline,
        flags,
        legs or [],
        supply or zero,
        borrow or zero,
        interest or zero,
        process or [],
        deltas or [],
    )


def _book(c: Any, vault: int) -> dict[str, Any]:
    keys = ("denomination", "glp", "cash", "collateral", "debt", "pending", "pendingShares", "totalShares")
    return dict(zip(keys, c("VaultManager").functions.getBook(vault).call(), strict=True))


def _mint_out(c: Any, token: str, amount: int) -> int:
    """GLP out of a mint, by hand: min price, 30 bps fee, usdg × supply / aumInUsdg(true)."""
    vault = c("Vault")
    after_fee = amount * 9_970 // 10_000
    usdg = (
        after_fee
        * vault.functions.getMinPrice(token).call()
        // 10 ** (vault.functions.tokenDecimals(token).call() + 12)
    )
    supply = c("GLP").functions.totalSupply().call()
    return usdg * supply // c("GlpManager").functions.getAumInUsdg(True).call()


def _glp_usd(c: Any, amount: int) -> int:
    return amount * c("GlpManager").functions.getAum(False).call() // c("GLP").functions.totalSupply().call()


def _mint_order_parts(c: Any, amount: int, share_bps: int) -> int:
    """Nominal GLP minimum for minting `amount` USDC at `share_bps` of the oracle value."""
    supply = c("GLP").functions.totalSupply().call()
    aum = c("GlpManager").functions.getAum(False).call()
    return amount * USD // 10**6 * share_bps // 10_000 * supply // aum


def test_seeded_books_match_the_chain(deployment: Deployment, c: Any) -> None:
    vm, pool, glp = c("VaultManager"), c("Pool"), c("GLP")
    books = [_book(c, v) for v in range(3)]
    assert vm.functions.vaultCount().call() == 3 and vm.functions.assetCount().call() == N
    assert [b["denomination"] for b in books] == [0, 1, 2]
    assert vm.functions.rebalanceCount().call() == 1
    assert vm.functions.lastCycleAt().call() == vm.functions.lastRebalanceAt().call() > 0
    assert sum(b["glp"] for b in books) == glp.functions.balanceOf(deployment.vault_manager).call()
    for i, sym in enumerate(("USDC", "WETH", "WBTC")):
        token = deployment.tokens[sym]
        held = c(sym).functions.balanceOf(deployment.vault_manager).call()
        assert sum(b["cash"][i] + b["pending"] * (b["denomination"] == i) for b in books) == held
        assert (
            sum(b["collateral"][i] for b in books)
            == pool.functions.collateralOf(deployment.vault_manager, token).call()
        )
        pool_debt = pool.functions.debtOf(deployment.vault_manager, token).call()
        assert sum(b["debt"][i] for b in books) + vm.functions.unassignedDebt(i).call() == pool_debt
    # Each vault: short every non-denomination asset, buffer ≈ 5% of its deposits, HF ≈ 1.5 overall.
    assert books[0]["debt"][0] == 0 and books[0]["debt"][1] > 0 and books[0]["debt"][2] > 0
    assert books[1]["debt"][1] == 0 and books[1]["debt"][0] > 0 and books[1]["debt"][2] > 0
    assert books[0]["cash"][0] // 10**6 == 50_000  # 5% of 1,000,000 USDC
    hf = pool.functions.getUserAccountData(deployment.vault_manager).call()[5]
    assert 1_499 * 10**15 <= hf <= 1_501 * 10**15
    assert vm.functions.getBooks(1, 10).call()[0][1] == books[1]["glp"]
    assert len(vm.functions.getBooks(0, 10).call()) == 3


def test_deposit_queue_and_process_buffers(w3: Web3, deployment: Deployment, c: Any, chain: Any) -> None:
    vm, usdc, user = c("VaultManager"), c("USDC"), deployment.users[0]
    send(w3, usdc.functions.mint(user, 10_000 * 10**6), deployment.owner)
    equity = vm.functions.equityUsd(0).call()
    total = _book(c, 0)["totalShares"]
    shares_before = vm.functions.sharesOf(0, user).call()
    send(w3, vm.functions.deposit(0, 10_000 * 10**6), user)
    expected_shares = 10_000 * USD * total // equity
    assert vm.functions.sharesOf(0, user).call() - shares_before == expected_shares
    book = _book(c, 0)
    assert book["pending"] == 10_000 * 10**6 and book["totalShares"] == total + expected_shares
    assert vm.functions.equityUsd(0).call() == equity + 10_000 * USD

    # Two requests: a small one the buffer can pay, then one larger than the buffer (stays queued, FIFO).
    small, large = 20_000 * 10**18, 300_000 * 10**18
    send(w3, vm.functions.requestWithdraw(0, small), user)
    send(w3, vm.functions.requestWithdraw(0, large), user)
    assert _book(c, 0)["pendingShares"] == small + large
    equity = vm.functions.equityUsd(0).call()
    total = _book(c, 0)["totalShares"]
    buffer = book["cash"][0] + book["pending"]
    expected_paid = small * equity // total * 10**6 // USD
    balance = usdc.functions.balanceOf(user).call()
    assert revert_of(vm.functions.processBuffers([0]), user) == ("NotKeeper", (user,))
    send(w3, vm.functions.processBuffers([0]), deployment.keeper)
    assert usdc.functions.balanceOf(user).call() - balance == expected_paid
    book = _book(c, 0)
    assert book["pending"] == 0
    assert book["cash"][0] == buffer - expected_paid
    assert book["totalShares"] == total - small
    assert book["pendingShares"] == large
    assert [tuple(w) for w in vm.functions.pendingWithdrawals(0).call()] == [(user, large)]
    have = vm.functions.sharesOf(0, user).call()
    assert revert_of(vm.functions.requestWithdraw(0, have + 1), user) == ("InsufficientShares", (have, have + 1))


def test_harvest_fees_risk_off_and_compounding(w3: Web3, deployment: Deployment, c: Any, chain: Any) -> None:
    vm, weth = c("VaultManager"), c("WETH")
    assert vm.functions.protocolFeeBps().call() == 1_850
    risk_off_bps = vm.functions.riskOffShareBps().call()
    rpc(chain.url, "evm_increaseTime", [7 * 86_400])
    rpc(chain.url, "evm_mine")
    glp_before = [_book(c, v)["glp"] for v in range(3)]
    treasury0 = weth.functions.balanceOf(deployment.treasury).call()
    risk_off0 = weth.functions.balanceOf(deployment.risk_off).call()
    receipt = send(w3, vm.functions.harvest(), deployment.keeper)
    (event,) = vm.events.Harvested().process_receipt(receipt, errors=DISCARD)
    rewards, fee, risk_off, minted = (
        event["args"][k] for k in ("rewards", "protocolFee", "riskOffAmount", "glpMinted")
    )
    # A week of ~20% APR on the manager's ≈ $1.7M of GLP ≈ $6.5k ≈ 2.2 ETH.
    assert 15 * 10**17 < rewards < 3 * 10**18
    assert fee == rewards * 1_850 // 10_000
    assert risk_off == (rewards - fee) * risk_off_bps // 10_000
    assert weth.functions.balanceOf(deployment.treasury).call() - treasury0 == fee
    assert weth.functions.balanceOf(deployment.risk_off).call() - risk_off0 == risk_off
    # The rest is minted into GLP and credited pro rata to GLP; the remainder to the largest (vault 0).
    total = sum(glp_before)
    shares = [minted * g // total for g in glp_before]
    shares[0] += minted - sum(shares)
    assert [_book(c, v)["glp"] for v in range(3)] == [g + s for g, s in zip(glp_before, shares, strict=True)]
    assert vm.functions.lastHarvestAt().call() == w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert c("RewardRouterV2").functions.claimable(deployment.vault_manager).call() == 0


def test_rebalance_mint_from_buffer_credits_the_surplus(w3: Web3, deployment: Deployment, c: Any, chain: Any) -> None:
    vm, usdc = c("VaultManager"), deployment.tokens["USDC"]
    amount = 10_000 * 10**6
    minimum = _mint_order_parts(c, amount, 9_950)
    expected = _mint_out(c, usdc, amount)
    assert expected > minimum
    before = _book(c, 0)
    order = _order(w3, [(0, minimum, amount)], [(0, _on(0, minimum), [-amount, 0, 0], [0] * N, [0] * N)], flags=2 | 4)
    receipt = send(w3, vm.functions.rebalance(order), deployment.keeper)
    after = _book(c, 0)
    assert after["glp"] == before["glp"] + expected  # nominal + the whole surplus (only vault)
    assert after["cash"][0] == before["cash"][0] - amount
    (traded,) = vm.events.GlpTraded().process_receipt(receipt, errors=DISCARD)
    assert traded["args"]["rebalanceId"] == 2
    assert traded["args"]["glpDelta"] == expected and traded["args"]["tokenAmount"] == amount
    assert traded["args"]["feeTokens"] == amount - amount * 9_970 // 10_000
    assert traded["args"]["surplus"] == expected - minimum
    (changed,) = vm.events.BookChanged().process_receipt(receipt, errors=DISCARD)
    assert changed["args"]["glp"] == after["glp"] and list(changed["args"]["cash"]) == after["cash"]
    (done,) = vm.events.Rebalanced().process_receipt(receipt, errors=DISCARD)
    assert done["args"]["flags"] == 6
    ts = w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert vm.functions.lastProfitAt().call() == vm.functions.lastCycleAt().call() == ts
    assert vm.functions.rebalanceCount().call() == 2


def test_rebalance_redeem_repays_debt_and_credits_cash_surplus(
    w3: Web3, deployment: Deployment, c: Any, chain: Any
) -> None:
    vm, usdc = c("VaultManager"), deployment.tokens["USDC"]
    glp_amount = 10_000 * 10**18
    min_out = _glp_usd(c, glp_amount) * 10**6 // USD * 9_950 // 10_000
    # Redeem output by hand: usdg at aumInUsdg(false), USDC at the max price, 30 bps fee.
    usdg = glp_amount * c("GlpManager").functions.getAumInUsdg(False).call() // c("GLP").functions.totalSupply().call()
    redemption = usdg * 10**18 // c("Vault").functions.getMaxPrice(usdc).call()
    out = redemption * 9_970 // 10_000
    before = _book(c, 2)
    order = _order(
        w3,
        [(0, -glp_amount, min_out)],
        [(2, _on(0, -glp_amount), [0] * N, [0] * N, [-min_out, 0, 0])],
        borrow=[-min_out, 0, 0],
    )
    send(w3, vm.functions.rebalance(order), deployment.keeper)
    after = _book(c, 2)
    assert after["glp"] == before["glp"] - glp_amount
    assert after["debt"][0] == before["debt"][0] - min_out
    assert after["cash"][0] == before["cash"][0] + out - min_out  # the surplus, to the redeeming vault
    held = c("USDC").functions.balanceOf(deployment.vault_manager).call()
    assert held == sum(_book(c, v)["cash"][0] for v in range(3))


def test_rebalance_attributes_interest(w3: Web3, deployment: Deployment, c: Any, chain: Any) -> None:
    vm = c("VaultManager")
    rpc(chain.url, "evm_increaseTime", [30 * 86_400])
    rpc(chain.url, "evm_mine")
    unassigned = vm.functions.unassignedDebt(0).call()
    assert unassigned > 0
    before = _book(c, 1)["debt"][0]
    overclaim = _order(w3, deltas=[(1, [0] * N, [0] * N, [0] * N, [10**12, 0, 0])], interest=[10**12, 0, 0])
    name, args = revert_of(vm.functions.rebalance(overclaim), deployment.keeper)
    assert name == "InterestOverclaimed" and args[:2] == (0, 10**12) and args[2] >= unassigned
    order = _order(w3, deltas=[(1, [0] * N, [0] * N, [0] * N, [unassigned, 0, 0])], interest=[unassigned, 0, 0])
    receipt = send(w3, vm.functions.rebalance(order), deployment.keeper)
    assert _book(c, 1)["debt"][0] == before + unassigned
    (moved,) = vm.events.LendingMoved().process_receipt(receipt, errors=DISCARD)
    assert moved["args"]["interest"] == unassigned and moved["args"]["borrowDelta"] == 0
    assert vm.functions.unassignedDebt(0).call() < unassigned // 1_000  # only the last seconds' accrual


def test_rebalance_rejections(w3: Web3, deployment: Deployment, c: Any, chain: Any) -> None:
    vm, keeper = c("VaultManager"), deployment.keeper
    usdc = deployment.tokens["USDC"]
    amount = 10_000 * 10**6
    minimum = _mint_order_parts(c, amount, 9_950)
    zero = [0] * N

    def mint_order(
        glp_min: int, cash: int = -amount, delta_glp: list[int] | None = None, **kw: Any
    ) -> tuple[Any, ...]:
        delta = (0, _on(0, glp_min) if delta_glp is None else delta_glp, [cash, 0, 0], zero, zero)
        return _order(w3, [(0, glp_min, amount)], [delta], **kw)

    def reverted(order: tuple[Any, ...], sender: str = keeper) -> tuple[str, tuple[Any, ...]]:
        return revert_of(vm.functions.rebalance(order), sender)

    # Non-conserving orders: the error names the instrument, the asset, declared and executed amounts.
    assert reverted(mint_order(minimum, cash=-amount + 1)) == (
        "ConservationViolated",
        (1, 0, -amount + 1, -amount),
    )
    assert reverted(mint_order(minimum, delta_glp=_on(0, minimum + 1))) == (
        "ConservationViolated",
        (0, 0, minimum + 1, minimum),
    )
    # GLP is conserved per asset leg: the right total booked partly against a WETH leg that does not exist.
    assert reverted(mint_order(minimum, delta_glp=[minimum - 5, 5, 0])) == (
        "ConservationViolated",
        (0, 0, minimum - 5, minimum),
    )
    assert reverted(mint_order(minimum, delta_glp=[minimum, 5, -5])) == ("ConservationViolated", (0, 1, 5, 0))
    assert reverted(mint_order(minimum, delta_glp=[minimum])) == ("LengthMismatch", ())
    assert reverted(mint_order(minimum, supply=[5, 0, 0])) == ("ConservationViolated", (2, 0, 0, 5))
    assert reverted(mint_order(minimum, borrow=[0, 7, 0])) == ("ConservationViolated", (3, 1, 0, 7))
    # A minimum the market cannot meet: the executed fill is below it.
    expected = _mint_out(c, usdc, amount)
    assert reverted(mint_order(expected + 1)) == ("FillOutsideBound", (usdc, expected, expected + 1))
    # A minimum below (1 − 1%) of the oracle value is too loose.
    loose = _mint_order_parts(c, amount, 9_800)
    required = -(-amount * USD // 10**6 * 9_900 // 10_000)
    assert reverted(mint_order(loose)) == ("BoundTooLoose", (0, _glp_usd(c, loose), required))
    # Deadline, shape, access.
    name, args = reverted(mint_order(minimum, deadline=1_000))
    assert name == "Expired" and args[0] == 1_000 and args[1] > 1_000
    double = _order(
        w3, [(0, minimum, amount), (0, 1, 1)], [(0, _on(0, minimum + 1), [-amount - 1, 0, 0], zero, zero)]
    )
    assert reverted(double) == ("DuplicateLeg", (0,))
    assert reverted(_order(w3, deltas=[(7, zero, zero, zero, zero)])) == ("UnknownVault", (7,))
    assert reverted(_order(w3, deltas=[(0, zero, [0], zero, zero)])) == ("LengthMismatch", ())
    user = deployment.users[0]
    assert reverted(mint_order(minimum), user) == ("NotKeeper", (user,))
    assert revert_of(vm.functions.harvest(), user) == ("NotKeeper", (user,))
    # Vault 1 has no USDC cash: charging it 1,000 USDC of the mint takes its book below zero.
    split = _order(
        w3,
        [(0, minimum, amount)],
        [(0, _on(0, minimum), [-amount + 10**9, 0, 0], zero, zero), (1, zero, [-(10**9), 0, 0], zero, zero)],
    )
    assert reverted(split) == ("InsufficientBook", (1, 1, 0))


def test_surplus_without_a_vault_on_its_side_reverts(w3: Web3, deployment: Deployment, c: Any, chain: Any) -> None:
    """Only reachable with the bound switched off (maxSlippageBps = 100%): a USDC mint leg with a 0 GLP
    minimum and no vault booking GLP through it. Its whole fill is surplus and nobody traded for it: the
    manager reverts instead of sharing it out."""
    vm, zero = c("VaultManager"), [0] * N
    send(w3, vm.functions.setLimits(10_000, 1_850, 1_000, 100), deployment.owner)
    amount = 1_000 * 10**6
    order = _order(w3, [(0, 0, amount)], [(0, zero, [-amount, 0, 0], zero, zero)])
    assert revert_of(vm.functions.rebalance(order), deployment.keeper) == ("NoSurplusRecipient", (0,))


def test_opposite_legs_credit_surplus_only_to_their_own_vaults(
    w3: Web3, deployment: Deployment, c: Any, chain: Any
) -> None:
    """Two legs in opposite directions, netted by `keeper.net.net_changes` from a real snapshot:
    vault 1 mints GLP with 5 WETH of its buffer, vault 0 redeems GLP into 20,000 USDC of buffer, vault 2
    borrows 5,000 USDC into GLP and sells GLP to repay 2 WETH. WETH nets to a mint leg (vault 2's 2 WETH
    crossed), USDC to a redeem leg (vault 2's 5,000 USDC crossed). Vault 2 is on the minority side of both
    legs and sells GLP overall: under the old total-GLP weights it took a share of the USDC redeem surplus.
    Now the WETH surplus goes only to vault 1 and the USDC surplus only to vault 0, and every book after
    execution equals `apply_order`'s prediction to the unit."""
    d = deployment
    vm = c("VaultManager")
    reader = SnapshotReader(
        w3, Addresses(d.vault_manager, d.multicall, d.gmx_vault, d.glp_manager, d.reward_router, d.pool, d.glp),
        keeper_address=d.keeper,
    )
    snap = reader.read()
    z, every = (0,) * N, frozenset(range(N))
    changes = [
        VaultChange(0, 0, every, 0, z, z, z, 20_000 * 10**6),  # redeem into its USDC buffer
        VaultChange(1, 1, every, 0, z, z, z, -5 * 10**18),  # mint with WETH from its buffer
        VaultChange(2, 2, every, 0, z, (5_000 * 10**6, -2 * 10**18, 0), z, 0),  # buy with USDC, sell for WETH
    ]
    plan = net_changes(
        changes, oracle_from_snapshot(snap), slippage_bps=50, max_slippage_bps=vm.functions.maxSlippageBps().call(),
        deadline=snap.block_timestamp + 3_600,
    )
    order = plan.order
    usdc_leg, weth_leg = order.leg(0), order.leg(1)
    assert order.leg(2) is None and usdc_leg is not None and weth_leg is not None
    assert usdc_leg.glp < 0 and usdc_leg.token_amount == 15_000 * 10**6  # redeem 20,000 − 5,000 crossed
    assert weth_leg.glp > 0 and weth_leg.token_amount == 3 * 10**18  # mint 5 − 2 crossed
    glp = {dl.vault: dl.glp for dl in order.deltas}
    assert glp[0][0] < 0 and glp[1][1] > 0 and glp[2][0] > 0 and glp[2][1] < 0  # vault 2 opposes both legs
    assert sum(glp[2]) < 0  # ... and sells GLP overall (the old rule's redeem-surplus recipient)

    receipt = send(w3, vm.functions.rebalance(order_abi(order)), d.keeper)
    traded = vm.events.GlpTraded().process_receipt(receipt, errors=DISCARD)
    tokens = [a.address.lower() for a in snap.assets]
    executed = tuple(
        ExecutedLeg(
            asset=tokens.index(str(e["args"]["token"]).lower()),
            glp=abs(int(e["args"]["glpDelta"])),
            token_amount=int(e["args"]["tokenAmount"]),
            fee_tokens=int(e["args"]["feeTokens"]),
        )
        for e in traded
    )
    surplus = {tokens.index(str(e["args"]["token"]).lower()): int(e["args"]["surplus"]) for e in traded}
    assert surplus[0] > 0 and surplus[1] > 0  # the market paid above both minimums

    predicted = {b.vault_id: b for b in apply_order(snap.books, order, executed)}
    changed = {int(e["args"]["vault"]): e["args"] for e in vm.events.BookChanged().process_receipt(
        receipt, errors=DISCARD)}
    assert sorted(changed) == [0, 1, 2]
    for v in range(3):
        book, model = _book(c, v), predicted[v]
        chain_book = (book["glp"], list(book["cash"]), list(book["collateral"]), list(book["debt"]))
        assert chain_book == (model.glp, list(model.cash), list(model.collateral), list(model.debt)), v
        ev = changed[v]
        assert (ev["glp"], list(ev["cash"]), list(ev["collateral"]), list(ev["debt"])) == chain_book

    # Credits on top of the nominal deltas: each leg's surplus lands only with its own vaults.
    before = {b.vault_id: b for b in snap.books}
    credit_glp, credit_cash = {}, {}
    for dl in order.deltas:
        after = _book(c, dl.vault)
        credit_glp[dl.vault] = after["glp"] - before[dl.vault].glp - sum(dl.glp)
        credit_cash[dl.vault] = [
            after["cash"][i] - before[dl.vault].cash[i] - dl.cash[i] for i in range(N)
        ]
    assert credit_glp == {0: 0, 1: surplus[1], 2: 0}  # WETH mint surplus: vault 1 only
    assert credit_cash == {0: [surplus[0], 0, 0], 1: [0, 0, 0], 2: [0, 0, 0]}  # USDC redeem surplus: vault 0
    # The old rule (weights = total GLP change) would have paid vault 2 this much of the USDC surplus.
    redeemers = {v: -sum(g) for v, g in glp.items() if sum(g) < 0}
    old_share = surplus[0] * redeemers[2] // sum(redeemers.values())
    assert old_share > 0
    held = [c(sym).functions.balanceOf(d.vault_manager).call() for sym in ("USDC", "WETH", "WBTC")]
    books = [_book(c, v) for v in range(3)]
    assert held == [sum(b["cash"][i] + b["pending"] * (b["denomination"] == i) for b in books) for i in range(N)]


def test_owner_only_and_pause(w3: Web3, deployment: Deployment, c: Any, chain: Any) -> None:
    vm, owner, keeper, user = c("VaultManager"), deployment.owner, deployment.keeper, deployment.users[0]
    assert revert_of(vm.functions.addVault(0), keeper) == ("NotOwner", (keeper,))
    assert revert_of(vm.functions.setKeeper(user), keeper) == ("NotOwner", (keeper,))
    assert revert_of(vm.functions.setLimits(1, 1, 1, 1), keeper) == ("NotOwner", (keeper,))
    assert revert_of(vm.functions.pause(), keeper) == ("NotOwner", (keeper,))
    assert revert_of(vm.functions.setLimits(10_001, 1, 1, 1), owner) == ("InvalidLimits", ())
    send(w3, vm.functions.setLimits(50, 2_000, 500, 80), owner)
    assert vm.functions.maxSlippageBps().call() == 50 and vm.functions.protocolFeeBps().call() == 2_000

    send(w3, vm.functions.pause(), owner)
    assert vm.functions.paused().call() is True
    assert revert_of(vm.functions.deposit(0, 1), user) == ("IsPaused", ())
    assert revert_of(vm.functions.rebalance(_order(w3)), keeper) == ("IsPaused", ())
    assert revert_of(vm.functions.processBuffers([0]), keeper) == ("IsPaused", ())
    assert revert_of(vm.functions.harvest(), keeper) == ("IsPaused", ())
    send(w3, vm.functions.unpause(), owner)
    send(w3, vm.functions.rebalance(_order(w3)), keeper)  # an empty order is a valid no-op
    assert vm.functions.rebalanceCount().call() == 2
    send(w3, vm.functions.addVault(1), owner)
    assert vm.functions.vaultCount().call() == 4
