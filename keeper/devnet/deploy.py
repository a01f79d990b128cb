"""Deterministic deployment of the devnet reference system (tokens, feeds, GMX, lending pool, VaultManager).

Sends from anvil's unlocked development accounts and waits for every receipt; a failed receipt raises
`DeploymentError`. Against a fresh anvil the same call always yields the same addresses and state.

Accounts: DEV_ACCOUNTS[0] owner/deployer, [1] keeper, [2] risk-off senior lender (supplies the lending
pool), [3] treasury, [4] and [5] users.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from keeper.chain import artifacts
from keeper.chain.reader import decode_reserve_configuration
from keeper.devnet.anvil import DEV_ACCOUNTS
from keeper.errors import KeeperError

SYMBOLS = ("USDC", "WETH", "WBTC")
TOKEN_SPECS: dict[str, tuple[str, int]] = {  # symbol -> (name, decimals)
    "USDC": ("USD Coin", 6),
    "WETH": ("Wrapped Ether", 18),
    "WBTC": ("Wrapped BTC", 8),
}
FEED_DECIMALS = 8
PRICES_USD = {"USDC": 1, "WETH": 3_000, "WBTC": 60_000}  # whole-dollar feed answers
FEED_DESCRIPTIONS = {"USDC": "USDC / USD", "WETH": "ETH / USD", "WBTC": "BTC / USD"}
USD30 = 10**30
RAY = 10**27
SECONDS_PER_YEAR = 365 * 24 * 3600

# GMX pool (whole tokens) and open interest.
GMX_POOL = {"USDC": 50_000_000, "WETH": 10_000, "WBTC": 500}
GMX_WEIGHTS = {"USDC": 50_000, "WETH": 25_000, "WBTC": 25_000}
GMX_RESERVED = {"USDC": 18_000_000, "WETH": 3_000, "WBTC": 150}  # USDC: reserved for shorts (not in AUM)
GMX_SHORTS = {"WETH": (10_000_000, 3_100), "WBTC": (8_000_000, 62_000)}  # size USD, average price USD
# guaranteedUsd ≈ the longs' reserved value plus the shorts' current profit, so GLP stays ≈ $1.
GMX_GUARANTEED_USD = {"WETH": 9_322_581, "WBTC": 9_258_065}
REWARD_FUNDING_WETH = 1_000
REWARD_APR = Fraction(20, 100)  # WETH rewards ≈ 20% a year on the pool's AUM

# Lending pool: (ltv bps, liquidation threshold bps, borrow cap whole tokens, annual rate).
RESERVES: dict[str, tuple[int, int, int, Fraction]] = {
    "USDC": (7_500, 7_800, 30_000_000, Fraction(5, 100)),
    "WETH": (8_000, 8_300, 4_000, Fraction(3, 100)),
    "WBTC": (7_300, 7_800, 180, Fraction(2, 100)),
}
SENIOR_SUPPLY = {"USDC": 20_000_000, "WETH": 5_000, "WBTC": 200}

VAULTS = (("usdc", "USDC"), ("eth", "WETH"), ("btc", "WBTC"))
USER_DEPOSITS: tuple[dict[str, int], ...] = (  # whole tokens per user (DEV_ACCOUNTS[4], [5])
    {"USDC": 600_000, "WETH": 200, "WBTC": 10},
    {"USDC": 400_000, "WETH": 100, "WBTC": 5},
)

# Seed rebalance targets.
TARGET_HF = Fraction(3, 2)
BUFFER_SHARE = Fraction(5, 100)
MINT_MIN_SHARE = Fraction(9_950, 10_000)  # minimum GLP out: 50 bps under the oracle (fee is 30 bps)
FLAG_CYCLE = 2


class DeploymentError(KeeperError):
    """A deployment transaction failed (reverted receipt)."""


@dataclass(frozen=True)
class VaultInfo:
    id: int
    name: str
    denomination: str  # "USDC" | "WETH" | "WBTC"


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    owner: str
    keeper: str
    risk_off: str
    treasury: str
    users: tuple[str, ...]
    tokens: dict[str, str]
    feeds: dict[str, str]
    gmx_vault: str
    glp_manager: str
    glp: str
    reward_router: str
    pool: str
    multicall: str
    vault_manager: str
    vaults: tuple[VaultInfo, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "chain_id": self.chain_id,
            "owner": self.owner,
            "keeper": self.keeper,
            "risk_off": self.risk_off,
            "treasury": self.treasury,
            "users": list(self.users),
            "tokens": dict(self.tokens),
            "feeds": dict(self.feeds),
            "gmx_vault": self.gmx_vault,
            "glp_manager": self.glp_manager,
            "glp": self.glp,
            "reward_router": self.reward_router,
            "pool": self.pool,
            "multicall": self.multicall,
            "vault_manager": self.vault_manager,
            "vaults": [{"id": v.id, "name": v.name, "denomination": v.denomination} for v in self.vaults],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Deployment:
        def addr(key: str) -> str:
            return Web3.to_checksum_address(str(data[key]))

        def addr_map(key: str) -> dict[str, str]:
            raw = data[key]
            assert isinstance(raw, Mapping)
            return {str(k): Web3.to_checksum_address(str(v)) for k, v in raw.items()}

        users = data["users"]
        vaults = data["vaults"]
        assert isinstance(users, Sequence) and isinstance(vaults, Sequence)
        vault_infos: list[VaultInfo] = []
        for item in vaults:
            assert isinstance(item, Mapping)
            vault_infos.append(VaultInfo(int(item["id"]), str(item["name"]), str(item["denomination"])))
        chain_id = data["chain_id"]
        assert isinstance(chain_id, int | str)
        return cls(
            chain_id=int(chain_id),
            owner=addr("owner"),
            keeper=addr("keeper"),
            risk_off=addr("risk_off"),
            treasury=addr("treasury"),
            users=tuple(Web3.to_checksum_address(str(u)) for u in users),
            tokens=addr_map("tokens"),
            feeds=addr_map("feeds"),
            gmx_vault=addr("gmx_vault"),
            glp_manager=addr("glp_manager"),
            glp=addr("glp"),
            reward_router=addr("reward_router"),
            pool=addr("pool"),
            multicall=addr("multicall"),
            vault_manager=addr("vault_manager"),
            vaults=tuple(vault_infos),
        )


def contract(w3: Web3, name: str, address: str) -> Contract:
    """A web3 contract bound to `address` with the ABI of `abis/<name>.json`."""
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifacts.abi(name))


def _check(receipt: TxReceipt, what: str) -> TxReceipt:
    if receipt["status"] != 1:
        raise DeploymentError(f"{what}: transaction {receipt['transactionHash'].hex()} reverted")
    return receipt


def send(w3: Web3, fn: ContractFunction, sender: str, what: str = "") -> TxReceipt:
    """Send a contract call from an unlocked account and wait for a successful receipt."""
    tx_hash = fn.transact({"from": sender})
    return _check(w3.eth.wait_for_transaction_receipt(tx_hash), what or fn.fn_name)


def _deploy(w3: Web3, name: str, sender: str, *args: Any) -> Contract:
    artifact = artifacts.load(name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx_hash = factory.constructor(*args).transact({"from": sender})
    receipt = _check(w3.eth.wait_for_transaction_receipt(tx_hash), f"deploy {name}")
    address = receipt["contractAddress"]
    assert address is not None
    return contract(w3, name, address)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def deploy_reference_system(w3: Web3, *, seed_positions: bool = True) -> Deployment:
    """Deploy and seed the whole reference system; see the module docstring for the accounts."""
    owner, keeper, risk_off, treasury, user_a, user_b = (Web3.to_checksum_address(a) for a in DEV_ACCOUNTS)
    users = (user_a, user_b)

    # ---- tokens and feeds ----
    tokens: dict[str, Contract] = {}
    feeds: dict[str, Contract] = {}
    for sym in SYMBOLS:
        name, decimals = TOKEN_SPECS[sym]
        tokens[sym] = _deploy(w3, "TestToken", owner, name, sym, decimals)
    for sym in SYMBOLS:
        answer = PRICES_USD[sym] * 10**FEED_DECIMALS
        feeds[sym] = _deploy(w3, "PriceFeed", owner, FEED_DECIMALS, FEED_DESCRIPTIONS[sym], answer)

    def units(sym: str, whole: int) -> int:
        decimals: int = TOKEN_SPECS[sym][1]
        return whole * int(10**decimals)

    def mint(sym: str, to: str, amount: int) -> None:
        send(w3, tokens[sym].functions.mint(to, amount), owner, f"mint {sym}")

    # ---- GMX ----
    gmx_vault = _deploy(w3, "Vault", owner)
    glp = _deploy(w3, "GLP", owner)
    glp_manager = _deploy(w3, "GlpManager", owner, gmx_vault.address, glp.address)
    router = _deploy(w3, "RewardRouterV2", owner, glp_manager.address, tokens["WETH"].address)
    send(w3, gmx_vault.functions.setManager(glp_manager.address), owner)
    send(w3, glp.functions.setMinter(glp_manager.address), owner)
    send(w3, glp.functions.setRewardTracker(router.address), owner)
    send(w3, glp_manager.functions.setHandler(router.address), owner)
    for sym in SYMBOLS:
        fn = gmx_vault.functions.setTokenConfig(
            tokens[sym].address, feeds[sym].address, TOKEN_SPECS[sym][1], GMX_WEIGHTS[sym], sym == "USDC"
        )
        send(w3, fn, owner)
    # Seed GLP with real mints from the deployer (the first mint is 1:1 in USDG), then round the pool
    # amounts up to the targets and fund the Vault with the tokens behind the accounting (pool + fees).
    for sym in SYMBOLS:
        amount = units(sym, GMX_POOL[sym])
        mint(sym, owner, amount)
        send(w3, tokens[sym].functions.approve(glp_manager.address, 2**256 - 1), owner)
        send(w3, router.functions.mintAndStakeGlp(tokens[sym].address, amount, 0, 0), owner)
    for sym in SYMBOLS:
        token = tokens[sym]
        target = units(sym, GMX_POOL[sym])
        fees = gmx_vault.functions.feeReserves(token.address).call()
        shortfall = target + fees - token.functions.balanceOf(gmx_vault.address).call()
        if shortfall > 0:
            mint(sym, gmx_vault.address, shortfall)
        send(w3, gmx_vault.functions.setPoolAmount(token.address, target), owner)
        send(w3, gmx_vault.functions.setReservedAmount(token.address, units(sym, GMX_RESERVED[sym])), owner)
    for sym, (size, avg) in GMX_SHORTS.items():
        address = tokens[sym].address
        send(w3, gmx_vault.functions.setGuaranteedUsd(address, GMX_GUARANTEED_USD[sym] * USD30), owner)
        send(w3, gmx_vault.functions.setGlobalShortSize(address, size * USD30), owner)
        send(w3, gmx_vault.functions.setGlobalShortAveragePrice(address, avg * USD30), owner)
    # Rewards: tokensPerInterval (WETH wei / s) = AUM × APR / ETH price / year.
    aum = glp_manager.functions.getAum(False).call()
    per_second = Fraction(aum, USD30) * REWARD_APR / PRICES_USD["WETH"] * 10**18 / SECONDS_PER_YEAR
    mint("WETH", router.address, units("WETH", REWARD_FUNDING_WETH))
    send(w3, router.functions.setTokensPerInterval(int(per_second)), owner)

    # ---- lending pool ----
    pool = _deploy(w3, "Pool", owner)
    for sym in SYMBOLS:
        ltv, lt, cap, rate = RESERVES[sym]
        fn = pool.functions.configureReserve(tokens[sym].address, feeds[sym].address, ltv, lt, cap, int(rate * RAY))
        send(w3, fn, owner)
    for sym in SYMBOLS:
        amount = units(sym, SENIOR_SUPPLY[sym])
        mint(sym, risk_off, amount)
        send(w3, tokens[sym].functions.approve(pool.address, 2**256 - 1), risk_off)
        send(w3, pool.functions.supply(tokens[sym].address, amount, risk_off, 0), risk_off)

    multicall = _deploy(w3, "Multicall3", owner)

    # ---- VaultManager ----
    asset_addresses = [tokens[s].address for s in SYMBOLS]
    feed_addresses = [feeds[s].address for s in SYMBOLS]
    manager = _deploy(
        w3,
        "VaultManager",
        owner,
        asset_addresses,
        feed_addresses,
        router.address,
        pool.address,
        keeper,
        treasury,
        risk_off,
    )
    vault_infos: list[VaultInfo] = []
    for vault_id, (vault_name, sym) in enumerate(VAULTS):
        send(w3, manager.functions.addVault(SYMBOLS.index(sym)), owner)
        vault_infos.append(VaultInfo(vault_id, vault_name, sym))
    for user, amounts in zip(users, USER_DEPOSITS, strict=True):
        for vault_id, (_, sym) in enumerate(VAULTS):
            amount = units(sym, amounts[sym])
            mint(sym, user, amount)
            send(w3, tokens[sym].functions.approve(manager.address, 2**256 - 1), user)
            send(w3, manager.functions.deposit(vault_id, amount), user)
    send(w3, manager.functions.processBuffers([v.id for v in vault_infos]), keeper)

    if seed_positions:
        order = seed_order(w3, manager, pool, glp_manager, glp)
        send(w3, manager.functions.rebalance(order), keeper, "seed rebalance")

    return Deployment(
        chain_id=w3.eth.chain_id,
        owner=owner,
        keeper=keeper,
        risk_off=risk_off,
        treasury=treasury,
        users=users,
        tokens={s: tokens[s].address for s in SYMBOLS},
        feeds={s: feeds[s].address for s in SYMBOLS},
        gmx_vault=gmx_vault.address,
        glp_manager=glp_manager.address,
        glp=glp.address,
        reward_router=router.address,
        pool=pool.address,
        multicall=multicall.address,
        vault_manager=manager.address,
        vaults=tuple(vault_infos),
    )


def seed_order(w3: Web3, manager: Contract, pool: Contract, glp_manager: Contract, glp: Contract) -> tuple[Any, ...]:
    """The seed rebalance: every vault roughly delta-neutral at health factor ≈ TARGET_HF.

    Model (exact rationals, amounts floored to token units): a vault with denomination d and equity E
    keeps collateral c in d and borrows every other asset a; borrowed tokens and the part of its buffer
    not used as collateral are minted into GLP. With w_a the GLP pool's per-USD exposure weights
    (w_a = value of poolAmount − reservedAmount for volatile tokens, poolAmount for stables, over the sum)
    and GLP value G:
        debt_a = G·w_a  (a ≠ d),  D = G·(1 − w_d),  c = H·D / LT_d  (so c·LT_d / D = H),
        E − B = G + c − D  with the buffer B = 5% of E
      ⇒ G = (E − B) / (1 + (1 − w_d)·(H / LT_d − 1)).
    The vault mints G·w_a worth of every asset: the borrowed tokens, plus G·w_d from its own buffer.
    Each (vault, asset) mint gets a nominal GLP minimum 50 bps under the oracle GLP price
    (getAum(false) / supply): the vault's `deltas.glp[asset]`, summed per asset into that asset's leg
    minimum; the contract credits each leg's surplus to the vaults minting through it, pro rata.
    """
    n = manager.functions.assetCount().call()
    assets = [manager.functions.assets(i).call() for i in range(n)]
    gmx = contract(w3, "Vault", glp_manager.functions.vault().call())
    decimals = [contract(w3, "TestToken", a).functions.decimals().call() for a in assets]
    prices = [manager.functions.priceOf(i).call() for i in range(n)]  # USD 1e30 per whole token
    lts = [decode_reserve_configuration(pool.functions.getConfiguration(a).call()[0]).liquidation_threshold_bps
           for a in assets]
    aum = glp_manager.functions.getAum(False).call()
    supply = glp.functions.totalSupply().call()

    exposure: list[int] = []
    for a, price, dec in zip(assets, prices, decimals, strict=True):
        amount = gmx.functions.poolAmounts(a).call()
        if not gmx.functions.stableTokens(a).call():
            amount -= gmx.functions.reservedAmounts(a).call()
        exposure.append(amount * price // 10**dec)
    weights = [Fraction(x, sum(exposure)) for x in exposure]

    def tokens_for(usd: Fraction, i: int) -> int:  # USD (1e30) -> token units, rounded down
        return int(usd * 10 ** decimals[i] / prices[i])

    def nominal_glp(amount: int, i: int) -> int:  # minimum GLP for minting `amount` of asset i
        return int(Fraction(amount * prices[i], 10 ** decimals[i]) * MINT_MIN_SHARE * supply / aum)

    zero = [0] * n
    supply_total, borrow_total = list(zero), list(zero)
    leg_tokens, leg_glp = list(zero), list(zero)
    deltas: list[tuple[Any, ...]] = []
    for vault_id in range(manager.functions.vaultCount().call()):
        book = manager.functions.getBook(vault_id).call()
        d = book[0]
        equity = Fraction(manager.functions.equityUsd(vault_id).call())
        lt = Fraction(lts[d], 10_000)
        glp_usd = equity * (1 - BUFFER_SHARE) / (1 + (1 - weights[d]) * (TARGET_HF / lt - 1))
        debt = [0 if i == d else tokens_for(glp_usd * weights[i], i) for i in range(n)]
        debt_usd = sum(Fraction(debt[i] * prices[i], 10 ** decimals[i]) for i in range(n))
        collateral = list(zero)
        collateral[d] = _ceil_div(int(TARGET_HF * debt_usd / lt * 10 ** decimals[d]), prices[d]) + 1
        minted = list(debt)
        minted[d] = tokens_for(glp_usd * weights[d], d)
        cash = list(zero)
        cash[d] = -collateral[d] - minted[d]
        assert book[2][d] + cash[d] >= 0, "seed order exceeds the buffer"
        glp_nominal = [nominal_glp(minted[i], i) for i in range(n)]
        for i in range(n):
            supply_total[i] += collateral[i]
            borrow_total[i] += debt[i]
            leg_tokens[i] += minted[i]
            leg_glp[i] += glp_nominal[i]
        deltas.append((vault_id, glp_nominal, cash, collateral, debt))  # GLP per asset leg

    legs = [(i, leg_glp[i], leg_tokens[i]) for i in range(n) if leg_tokens[i] > 0]
    deadline = w3.eth.get_block("latest")["timestamp"] + 3_600
    return (deadline, FLAG_CYCLE, legs, supply_total, borrow_total, list(zero), [], deltas)
