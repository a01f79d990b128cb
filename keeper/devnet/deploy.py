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
from keeper.chain.reader import Addresses, SnapshotReader
from keeper.decide import Rules, decide
from keeper.devnet.anvil import DEV_ACCOUNTS
from keeper.errors import KeeperError
from keeper.net import VaultChange, net_changes, oracle_from_snapshot, order_abi

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

# Seed rebalance: the keeper's own fit (keeper.decide), netted like the daemon's orders (keeper.net).
SEED_SLIPPAGE_BPS = 50  # GLP leg minimum 50 bps (fee 30 included) under the oracle
SEED_NOTIONAL_CAP_USD = 10**12  # no per-rebalance cap: the seed fit is complete
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
        addresses = Addresses(manager.address, multicall.address, gmx_vault.address, glp_manager.address,
                              router.address, pool.address, glp.address)
        order = seed_order(w3, addresses, keeper)
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


def seed_order(w3: Web3, addresses: Addresses, keeper: str) -> tuple[Any, ...]:
    """The seed rebalance: every vault exactly at the keeper's own target (drift ≈ 0, within any band).

    Reads a snapshot of the deployed system (`keeper.chain.reader`), fits every vault with the decision core
    (`keeper.decide.decide`, default rules: the devnet config's; the fit does not depend on the drift policy;
    no notional cap, so the first fit is complete) and nets the plan into one order with the keeper's netting
    engine (`keeper.net`), as the daemon would. The fit uses the OI seen now, which the keeper records as
    applied on its first run. Flags: the recurring cycle (as before: the first cycle is due 48h later).
    """
    snap = SnapshotReader(w3, addresses, keeper).read()
    rules = {b.vault_id: Rules(notional_cap_usd=SEED_NOTIONAL_CAP_USD) for b in snap.books}
    decision = decide(snap, rules, gas_price_wei=0)
    if decision.halts or decision.plan is None:
        raise DeploymentError(f"seed: the decision core does not plan the seed: {[h.reason() for h in decision.halts]}")
    plan = decision.plan
    if {vp.vault_id for vp in plan.vaults} != set(rules) or any(vp.partial for vp in plan.vaults):
        raise DeploymentError("seed: the plan does not fit every vault in full")
    changes = []
    for vp in plan.vaults:
        mandate = {vp.denomination} | {i for i, a in enumerate(snap.assets)
                                       if a.is_stable or a.symbol in rules[vp.vault_id].hedged_assets}
        mandate |= {i for i in range(len(snap.assets)) if vp.debt[i] or vp.collateral[i] or vp.interest[i]}
        changes.append(VaultChange(
            vault_id=vp.vault_id, denomination=vp.denomination, mandate=frozenset(mandate), glp=vp.glp,
            collateral=vp.collateral, debt=tuple(d - i for d, i in zip(vp.debt, vp.interest, strict=True)),
            interest=vp.interest, buffer=vp.cash[vp.denomination],
        ))
    net = net_changes(changes, oracle_from_snapshot(snap), slippage_bps=SEED_SLIPPAGE_BPS, max_slippage_bps=100,
                      deadline=snap.block_timestamp + 3_600, flags=FLAG_CYCLE,
                      books={b.vault_id: b for b in snap.books})
    return order_abi(net.order)
