"""The market simulator that drives the devnet for the demo, the benchmarks and the fault suite.

Owns price paths (geometric Brownian motion with scripted shocks: a crash and a rally), trader open
interest swings, user deposits and withdrawals, and compressed time (`evm_increaseTime`). Path
generation is pure and seeded (Decimal prices, no floats in the state); `Market` applies a step to
the chain through the devnet contracts' admin setters and the users' own calls. Test tool: never
imported by the keeper's decision path.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

from web3 import Web3
from web3.contract.contract import ContractFunction

from keeper.devnet.anvil import rpc
from keeper.devnet.deploy import FEED_DECIMALS, TOKEN_SPECS, Deployment, contract, send

YEAR = 365 * 24 * 3600


@dataclass(frozen=True)
class Shock:
    step: int
    symbol: str
    factor: Decimal  # multiplies the price at that step (0.8 = a 20% crash)


@dataclass(frozen=True)
class Script:
    """What the market does: per-asset annual volatility, step length, scripted shocks."""

    seed: int = 7
    step_seconds: int = 3600
    volatility: Mapping[str, Decimal] = field(
        default_factory=lambda: {"WETH": Decimal("0.8"), "WBTC": Decimal("0.6")}
    )
    shocks: tuple[Shock, ...] = ()


def gbm_paths(script: Script, start: Mapping[str, Decimal], steps: int) -> list[dict[str, Decimal]]:
    """Prices for steps 0..steps (step 0 = start). Zero drift; exact Decimal state, seeded normals."""
    rng = random.Random(script.seed)  # noqa: S311 - a reproducible simulation, not cryptography
    dt = Decimal(script.step_seconds) / Decimal(YEAR)
    shocks: dict[int, list[Shock]] = {}
    for shock in script.shocks:
        shocks.setdefault(shock.step, []).append(shock)
    path = [dict(start)]
    with localcontext() as ctx:
        ctx.prec = 40
        for step in range(1, steps + 1):
            prices = dict(path[-1])
            for symbol, vol in script.volatility.items():
                z = Decimal(repr(rng.gauss(0.0, 1.0)))
                prices[symbol] = prices[symbol] * (-(vol * vol) * dt / 2 + vol * dt.sqrt() * z).exp()
            for shock in shocks.get(step, []):
                prices[shock.symbol] = prices[shock.symbol] * shock.factor
            path.append({s: p.quantize(Decimal("0.00000001")) for s, p in prices.items()})
    return path


class Market:
    """Applies market moves to a running devnet (owner = anvil account 0, the devnet's admin)."""

    def __init__(self, w3: Web3, deployment: Deployment) -> None:
        self.w3 = w3
        self.d = deployment
        self._feeds = {s: contract(w3, "PriceFeed", a) for s, a in deployment.feeds.items()}
        self._tokens = {s: contract(w3, "TestToken", a) for s, a in deployment.tokens.items()}
        self._gmx = contract(w3, "Vault", deployment.gmx_vault)
        self._vm = contract(w3, "VaultManager", deployment.vault_manager)

    @property
    def url(self) -> str:
        return str(self.w3.provider.endpoint_uri)  # type: ignore[attr-defined]

    def set_prices(self, prices: Mapping[str, Decimal], *, wait: bool = True) -> None:
        """Every feed in `prices` answers its USD price from the next block. `wait=False` only sends (the
        caller mines: with automine off the updates land in the next block it mines)."""
        for symbol, usd in prices.items():
            answer = int((usd * 10**FEED_DECIMALS).to_integral_value())
            fn = self._feeds[symbol].functions.setAnswer(answer)
            if wait:
                send(self.w3, fn, self.d.owner, f"price {symbol}")
            else:
                fn.transact({"from": self.d.owner, "gas": 200_000})

    def add_vaults(self, count: int, per_block: int = 200) -> int:
        """`count` empty vaults (denominations cycling USDC, WETH, WBTC) added to the VaultManager, `per_block`
        per mined block (automine off meanwhile, restored after); returns the manager's vault count."""
        rpc(self.url, "evm_setAutomine", [False])
        try:
            for i in range(count):
                self._vm.functions.addVault(i % 3).transact({"from": self.d.owner, "gas": 400_000})
                if i % per_block == per_block - 1:
                    rpc(self.url, "evm_mine")
            rpc(self.url, "evm_mine")
        finally:
            rpc(self.url, "evm_setAutomine", [True])
        value: int = self._vm.functions.vaultCount().call()
        return value

    def set_open_interest(self, symbol: str, reserved_tokens: Decimal, short_usd: Decimal, short_avg: Decimal) -> None:
        token = self.d.tokens[symbol]
        decimals = TOKEN_SPECS[symbol][1]
        reserved = int(reserved_tokens * 10**decimals)
        send(self.w3, self._gmx.functions.setReservedAmount(token, reserved), self.d.owner)
        send(self.w3, self._gmx.functions.setGlobalShortSize(token, int(short_usd * 10**30)), self.d.owner)
        send(self.w3, self._gmx.functions.setGlobalShortAveragePrice(token, int(short_avg * 10**30)), self.d.owner)

    def deposit(self, user: str, vault_id: int, amount: int) -> None:
        symbol = list(self.d.tokens)[self._vm.functions.getBook(vault_id).call()[0]]
        send(self.w3, self._tokens[symbol].functions.mint(user, amount), self.d.owner)
        send(self.w3, self._tokens[symbol].functions.approve(self.d.vault_manager, amount), user)
        send(self.w3, self._vm.functions.deposit(vault_id, amount), user, "deposit")

    def request_withdraw(self, user: str, vault_id: int, shares: int) -> None:
        send(self.w3, self._vm.functions.requestWithdraw(vault_id, shares), user, "withdraw request")

    def shares(self, user: str, vault_id: int) -> int:
        value: int = self._vm.functions.sharesOf(vault_id, user).call()
        return value

    def step(
        self,
        seconds: int,
        prices: Mapping[str, Decimal],
        open_interest: Sequence[tuple[str, Decimal, Decimal, Decimal]] = (),
        *,
        deposit: tuple[str, int, int] | None = None,
        withdraw: tuple[str, int, int] | None = None,
        also: Sequence[tuple[ContractFunction, str]] = (),
    ) -> int:
        """One market step as ONE block: `seconds` of time, every feed in `prices`, the open interest
        (symbol, reserved tokens, short USD, short average price), a user's deposit (user, vault, amount) and
        withdrawal request (user, vault, shares). Returns the block number.

        A step stands for `seconds` of market time (hours in the demo). Applied as a burst of one block per
        setter, a keeper that read the chain between two of them traded on half a step, and its transaction
        met the rest of the step — hours of price movement between its snapshot and its inclusion, which no
        real block sees (a real Chainlink feed moves by one deviation threshold per update). In one block the
        keeper sees the state before the step or after it, never a mix. The deposit's tokens are minted and
        approved first (own blocks: nothing the keeper reads); the user's deposit and request follow in the
        step's block (same sender: nonce order). `also`: further (call, sender) pairs for the same block, after
        these (e.g. keeper.devnet.lyf.price_step_calls)."""
        if deposit is not None:
            user, vault_id, amount = deposit
            symbol = list(self.d.tokens)[self._vm.functions.getBook(vault_id).call()[0]]
            send(self.w3, self._tokens[symbol].functions.mint(user, amount), self.d.owner)
            send(self.w3, self._tokens[symbol].functions.approve(self.d.vault_manager, amount), user)
        calls: list[tuple[ContractFunction, str]] = []
        for symbol, usd in prices.items():
            answer = int((usd * 10**FEED_DECIMALS).to_integral_value())
            calls.append((self._feeds[symbol].functions.setAnswer(answer), self.d.owner))
        for symbol, reserved_tokens, short_usd, short_avg in open_interest:
            token = self.d.tokens[symbol]
            reserved = int(reserved_tokens * 10 ** TOKEN_SPECS[symbol][1])
            calls.append((self._gmx.functions.setReservedAmount(token, reserved), self.d.owner))
            calls.append((self._gmx.functions.setGlobalShortSize(token, int(short_usd * 10**30)), self.d.owner))
            calls.append((self._gmx.functions.setGlobalShortAveragePrice(token, int(short_avg * 10**30)),
                          self.d.owner))
        if deposit is not None:
            calls.append((self._vm.functions.deposit(deposit[1], deposit[2]), deposit[0]))
        if withdraw is not None:
            calls.append((self._vm.functions.requestWithdraw(withdraw[1], withdraw[2]), withdraw[0]))
        calls.extend(also)
        rpc(self.url, "evm_setAutomine", [False])
        try:
            hashes = [fn.transact({"from": sender, "gas": 1_000_000}) for fn, sender in calls]
            rpc(self.url, "evm_increaseTime", [seconds])
            rpc(self.url, "evm_mine")
        finally:
            rpc(self.url, "evm_setAutomine", [True])
        blocks = set()
        for (fn, _sender), h in zip(calls, hashes, strict=True):
            receipt = self.w3.eth.wait_for_transaction_receipt(h)
            if receipt["status"] != 1:
                raise RuntimeError(f"market step: {fn.fn_name} reverted")
            blocks.add(int(receipt["blockNumber"]))
        number = int(self.w3.eth.block_number)
        if blocks - {number}:
            raise RuntimeError(f"market step spread over blocks {sorted(blocks)}")
        return number

    def advance(self, seconds: int, blocks: int = 1) -> None:
        """Compress time: the next block is `seconds` later (rewards, interest and timers move with it)."""
        rpc(self.url, "evm_increaseTime", [seconds])
        for _ in range(blocks):
            rpc(self.url, "evm_mine")


def oi_swing(step: int, period: int, base_reserved: Decimal, amplitude: Decimal) -> Decimal:
    """A triangle wave of reserved amounts (traders opening and closing longs), pure."""
    phase = step % period
    half = Decimal(period) / 2
    position = Decimal(phase) / half if phase < half else (Decimal(period) - phase) / half
    return base_reserved * (1 + amplitude * (2 * position - 1))


def describe(path: Sequence[Mapping[str, Decimal]]) -> str:
    first, last = path[0], path[-1]
    return ", ".join(f"{s} {first[s]:.2f}→{last[s]:.2f}" for s in first)
