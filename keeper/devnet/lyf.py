"""Devnet deployment of the leveraged-LP (LYF) strategy: a Uniswap V2 pair, a lender, a farm and a position.

Deterministic against a fresh anvil (same calls, same addresses). Sends from anvil's unlocked
development accounts (keeper.devnet.anvil.DEV_ACCOUNTS) and waits for every receipt:
[0] owner/deployer (and the position's owner), [1] keeper (same as the GLP keeper), [2] lender (funds
the LyfLender), [4] liquidity provider (seeds the pool), [5] arbitrageur (`move_price`).

State after `deploy_lyf`: AVAX (18 decimals) at $20 on a Chainlink-style feed (8 decimals); a pool seeded
with 250,000 AVAX / 5,000,000 USDC (6 decimals) by the LP account; the lender funded and lending at
AVAX 3% / USDC 8% a year; a position of 1,000,000 USDC equity at 3.00× leverage, neutral (its LP holds the
AVAX it owes, to the pair's rounding); its LP staked in the farm, which pays USDC at a rate worth ≈ 20% a
year on the position's LP. Post-rebalance bounds: leverage within [2.90×, 3.10×], |delta| ≤ 0.001 AVAX.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction

from keeper.chain import artifacts
from keeper.devnet.anvil import DEV_ACCOUNTS
from keeper.devnet.deploy import DeploymentError, contract, send

VOLATILE = ("Avalanche", "AVAX", 18)
STABLE = ("USD Coin", "USDC", 6)
FEED_DECIMALS = 8
PRICE_USD = 20
POOL_VOLATILE = 250_000  # whole tokens seeded by the LP account
POOL_STABLE = 5_000_000
EQUITY_STABLE = 1_000_000  # whole USDC
TARGET_LEVERAGE_BPS = 30_000
RATES = {"AVAX": Fraction(3, 100), "USDC": Fraction(8, 100)}  # annual borrow rates
LENDER_FUNDING = {"AVAX": 500_000, "USDC": 20_000_000}  # whole tokens
FARM_APR = Fraction(20, 100)  # on the position's LP value at set-up
FARM_FUNDING_STABLE = 5_000_000  # whole USDC: years of rewards
BOUNDS = (29_000, 31_000, 10**15)  # min / max leverage bps, max |delta| in volatile units (0.001 AVAX)
RAY = 10**27
SECONDS_PER_YEAR = 365 * 24 * 3600
MAX_UINT = 2**256 - 1


@dataclass(frozen=True)
class LyfDeployment:
    chain_id: int
    owner: str
    keeper: str
    lender_account: str
    liquidity_provider: str
    arbitrageur: str
    volatile: str  # AVAX TestToken (pair token0)
    stable: str  # USDC TestToken (pair token1)
    feed: str  # AVAX / USD PriceFeed
    pair: str  # UniPair
    lender: str  # LyfLender
    farm: str  # LyfFarm
    position: str  # LyfPosition
    multicall: str  # Multicall3 (for the reader)

    def to_dict(self) -> dict[str, object]:
        return dict(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> LyfDeployment:
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            raw = data[name]
            if name == "chain_id":
                assert isinstance(raw, int | str)
                values[name] = int(raw)
            else:
                values[name] = Web3.to_checksum_address(str(raw))
        return cls(**values)


def _deploy(w3: Web3, name: str, sender: str, *args: Any) -> Contract:
    artifact = artifacts.load(name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx_hash = factory.constructor(*args).transact({"from": sender})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    if receipt["status"] != 1 or receipt["contractAddress"] is None:
        raise DeploymentError(f"deploy {name}: transaction {receipt['transactionHash'].hex()} reverted")
    return contract(w3, name, receipt["contractAddress"])


def deploy_lyf(w3: Web3) -> LyfDeployment:
    """Deploy and seed the LYF system; see the module docstring for accounts and state."""
    owner, keeper, lender_account, _, lp_account, arbitrageur = (Web3.to_checksum_address(a) for a in DEV_ACCOUNTS)
    v_unit, s_unit = 10 ** VOLATILE[2], 10 ** STABLE[2]

    avax = _deploy(w3, "TestToken", owner, *VOLATILE)
    usdc = _deploy(w3, "TestToken", owner, *STABLE)
    feed = _deploy(w3, "PriceFeed", owner, FEED_DECIMALS, "AVAX / USD", PRICE_USD * 10**FEED_DECIMALS)
    pair = _deploy(w3, "UniPair", owner, avax.address, usdc.address)
    lender = _deploy(w3, "LyfLender", owner)
    farm = _deploy(w3, "LyfFarm", owner, pair.address, usdc.address)
    multicall = _deploy(w3, "Multicall3", owner)
    position = _deploy(w3, "LyfPosition", owner, pair.address, lender.address, farm.address, feed.address, keeper)

    # Pool: the LP account adds both tokens and mints (first mint: sqrt(a·b) − 1000 LP).
    send(w3, avax.functions.mint(pair.address, POOL_VOLATILE * v_unit), owner, "seed pool AVAX")
    send(w3, usdc.functions.mint(pair.address, POOL_STABLE * s_unit), owner, "seed pool USDC")
    send(w3, pair.functions.mint(lp_account), lp_account, "seed pool mint")

    # Lender: listed assets, rates, funded by the lender account; the position may borrow.
    for token, sym in ((avax, "AVAX"), (usdc, "USDC")):
        amount = LENDER_FUNDING[sym] * int(10 ** token.functions.decimals().call())
        send(w3, lender.functions.setRate(token.address, int(RATES[sym] * RAY)), owner, f"rate {sym}")
        send(w3, token.functions.mint(lender_account, amount), owner, f"mint {sym}")
        send(w3, token.functions.approve(lender.address, MAX_UINT), lender_account)
        send(w3, lender.functions.fund(token.address, amount), lender_account, f"fund lender {sym}")
    send(w3, lender.functions.allowBorrower(position.address, True), owner)

    # Position: 1M USDC equity at 3×, neutral; then the bounds the keeper's rebalances must land in.
    equity = EQUITY_STABLE * s_unit
    send(w3, usdc.functions.mint(owner, equity), owner, "mint equity")
    send(w3, usdc.functions.approve(position.address, MAX_UINT), owner)
    send(w3, position.functions.open(equity, TARGET_LEVERAGE_BPS), owner, "open position")
    send(w3, position.functions.setBounds(*BOUNDS), owner)

    # Farm: USDC per second ≈ FARM_APR a year on the position's LP value at the oracle.
    lp_volatile, lp_stable, *_ = position.functions.holdings().call()
    lp_value = Fraction(lp_volatile * PRICE_USD * s_unit, v_unit) + lp_stable
    send(w3, usdc.functions.mint(farm.address, FARM_FUNDING_STABLE * s_unit), owner, "fund farm")
    send(w3, farm.functions.setRewardPerSecond(int(lp_value * FARM_APR / SECONDS_PER_YEAR)), owner)

    return LyfDeployment(
        chain_id=w3.eth.chain_id,
        owner=owner,
        keeper=keeper,
        lender_account=lender_account,
        liquidity_provider=lp_account,
        arbitrageur=arbitrageur,
        volatile=avax.address,
        stable=usdc.address,
        feed=feed.address,
        pair=pair.address,
        lender=lender.address,
        farm=farm.address,
        position=position.address,
        multicall=multicall.address,
    )


def _amount_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    with_fee = amount_in * 997
    return with_fee * reserve_out // (reserve_in * 1000 + with_fee)


def move_price(w3: Web3, d: LyfDeployment, factor: Fraction) -> tuple[int, int]:
    """Scale the oracle by `factor` and arbitrage the pool to it; returns the swap (amount in, amount out).

    The arbitrageur (minted what it pays) sells stable for volatile when the price rose, volatile for
    stable when it fell: the largest amount in (getAmountOut, 0.3% fee) whose post-trade pool price does
    not pass the oracle, so the pool ends within one unit of trade of the new price. One transaction per
    block (automine): a keeper may trade on the pool between them — `price_step_calls` keeps them in one block.
    """
    calls, swap = price_step_calls(w3, d, factor)
    for fn, sender in calls:
        send(w3, fn, sender, fn.fn_name)
    return swap


def price_step_calls(w3: Web3, d: LyfDeployment, factor: Fraction
                     ) -> tuple[list[tuple[ContractFunction, str]], tuple[int, int]]:
    """The calls of `move_price` (the oracle update, the arbitrageur's transfer and swap), to be mined in ONE
    block with nothing in between, and the swap (amount in, amount out). Computed on the reserves now: if
    another swap on the pair lands first, the arbitrage's output no longer fits and the swap reverts
    (`KInvariant`). The arbitrageur's funds are minted here, in their own block (the pool does not see them)."""
    feed, pair = contract(w3, "PriceFeed", d.feed), contract(w3, "UniPair", d.pair)
    answer = feed.functions.latestRoundData().call()[1]
    new_answer = int(Fraction(answer) * factor)
    calls: list[tuple[ContractFunction, str]] = [(feed.functions.setAnswer(new_answer), d.owner)]
    v_dec = contract(w3, "TestToken", d.volatile).functions.decimals().call()
    s_dec = contract(w3, "TestToken", d.stable).functions.decimals().call()
    f_dec = feed.functions.decimals().call()
    price = Fraction(new_answer * 10**s_dec, 10 ** (f_dec + v_dec))  # stable units per volatile unit
    r0, r1, _ = pair.functions.getReserves().call()
    buy = Fraction(r1, r0) < price  # pool volatile too cheap: buy it with stable
    reserve_in, reserve_out = (r1, r0) if buy else (r0, r1)

    def overshoots(amount_in: int) -> bool:
        out = _amount_out(amount_in, reserve_in, reserve_out)
        if out >= reserve_out:
            return True
        x, y = (r0 - out, r1 + amount_in) if buy else (r0 + amount_in, r1 - out)
        return Fraction(y, x) > price if buy else Fraction(y, x) < price

    lo, hi = 0, 1
    while not overshoots(hi):
        hi *= 2
    while hi - lo > 1:  # largest amount in that does not overshoot: lo
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if overshoots(mid) else (mid, hi)
    if lo == 0:
        return calls, (0, 0)
    out = _amount_out(lo, reserve_in, reserve_out)
    token_in = contract(w3, "TestToken", d.stable if buy else d.volatile)
    send(w3, token_in.functions.mint(d.arbitrageur, lo), d.owner, "arbitrage funds")
    amounts = (out, 0) if buy else (0, out)
    calls.append((token_in.functions.transfer(pair.address, lo), d.arbitrageur))
    calls.append((pair.functions.swap(*amounts, d.arbitrageur, b""), d.arbitrageur))  # same sender: nonce order
    return calls, (lo, out)


def pool_price(w3: Web3, d: LyfDeployment) -> Fraction:
    """The pair's spot price (stable units per volatile unit)."""
    r0, r1, _ = contract(w3, "UniPair", d.pair).functions.getReserves().call()
    return Fraction(r1, r0)
