"""Fixtures of the fault and abuse suite: the daemon under attack, the market, result rows.

Every daemon's logs and /metrics scrapes go to the session's secret scan (tests/faults/plugin.py).

Slow scenarios (`@pytest.mark.slow`) are deselected here unless a `-m` expression is given, so `make test`
runs the representative fast subset and `make faults` (`-m "slow or not slow"`) runs everything. Only items
under tests/faults are affected.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from keeper.devnet.anvil import DEV_ACCOUNTS, Anvil, free_port, rpc
from keeper.devnet.deploy import Deployment, contract
from keeper.devnet.market import Market
from keeper.devnet.session import devnet_config
from keeper.faults.chainops import nonce
from keeper.faults.process import DaemonProcess
from tests.faults.plugin import SCAN

HERE = Path(__file__).resolve().parent
KEEPER = DEV_ACCOUNTS[1]

# children cache bytecode outside the repo (the environment disables .pyc writing; imports dominate start-up)
CHILD_ENV = {
    "PYTHONDONTWRITEBYTECODE": "",
    "PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir()) / "keeper-faults-pycache"),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("markexpr"):
        return
    skip = pytest.mark.skip(reason="slow fault scenario: `make faults` runs it")
    for item in items:
        if HERE in Path(str(item.fspath)).parents and item.get_closest_marker("slow"):
            item.add_marker(skip)


def keeper_config(anvil: Anvil, deployment: Deployment, state: Path, **sections: Any) -> dict[str, Any]:
    """The e2e test's config (fast schedule, confirmations 1, free metrics port), sections merged over it."""
    config: dict[str, Any] = devnet_config(anvil, deployment)
    config["state_dir"] = str(state)
    config["metrics"] = {"host": "127.0.0.1", "port": free_port()}
    config["schedule"] = {"poll_seconds": 0.25, "in_flight_seconds": 0.25, "grace_seconds": 10}
    config["chain"] = {**config["chain"], "confirmations": 1, "request_timeout_seconds": 2}
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(config.get(name), dict):
            config[name] = {**config[name], **value}
        else:
            config[name] = value
    return config


@dataclass
class World:
    """The devnet as the scenarios move it: prices, time, blocks, and what the VaultManager did."""

    anvil: Anvil
    w3: Web3
    deployment: Deployment
    market: Market
    prices: dict[str, Decimal] = field(
        default_factory=lambda: {"USDC": Decimal(1), "WETH": Decimal(3000), "WBTC": Decimal(60000)}
    )

    @property
    def url(self) -> str:
        return self.anvil.url

    def vm(self) -> Any:
        return contract(self.w3, "VaultManager", self.deployment.vault_manager)

    def rebalances(self) -> int:
        count: int = self.vm().functions.rebalanceCount().call()
        return count

    def keeper_nonce(self, tag: str = "latest") -> int:
        return nonce(self.url, KEEPER, tag)

    def mine(self) -> None:
        rpc(self.url, "evm_mine")

    def mine_many(self, blocks: int = 12) -> None:
        """Several blocks at once: the finalized tag (head − 64 on anvil) comes within reach sooner."""
        rpc(self.url, "anvil_mine", [hex(blocks)])

    def step(self, seconds: int = 0, **moves: Decimal) -> None:
        """Advance chain time and refresh every feed (a live feed updates within its heartbeat)."""
        if seconds:
            self.market.advance(seconds)
        self.prices.update(moves)
        self.market.set_prices(self.prices)

    def drift_unmined(self) -> None:
        """The same drift with automine off: the price updates land in one block, mined here; the keeper's
        answer then waits in the mempool until the scenario mines (automine stays off)."""
        weth = (self.prices["WETH"] * Decimal("1.12")).quantize(Decimal(1))
        self.prices["WETH"] = weth
        rpc(self.url, "evm_setAutomine", [False])
        for symbol, usd in self.prices.items():
            feed = contract(self.w3, "PriceFeed", self.deployment.feeds[symbol])
            feed.functions.setAnswer(int(usd * 10**8)).transact({"from": self.deployment.owner, "gas": 200_000})
        rpc(self.url, "evm_increaseTime", [60])
        rpc(self.url, "evm_mine")

    def automine(self, on: bool) -> None:
        rpc(self.url, "evm_setAutomine", [on])

    def drift(self) -> None:
        """ETH ±12%: every vault's hedge drifts beyond 5% → a delta-drift rebalance is due."""
        weth = self.prices["WETH"]
        self.step(60, WETH=(weth * Decimal("1.12")).quantize(Decimal(1)))


@pytest.fixture
def world(anvil: Anvil, w3: Web3, deployment: Deployment, chain: Anvil) -> Iterator[World]:
    """The session devnet, isolated by the `chain` snapshot; node settings a scenario changes are restored."""
    try:
        yield World(anvil, w3, deployment, Market(w3, deployment))
    finally:
        rpc(anvil.url, "evm_setAutomine", [True])


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """`daemons(config, name=...)` → a DaemonProcess (not started); all are stopped by pid afterwards."""
    made: list[DaemonProcess] = []

    def make(config: dict[str, Any], name: str = "keeper", **kw: Any) -> DaemonProcess:
        kw.setdefault("env", CHILD_ENV)
        d = DaemonProcess(config, tmp_path / "daemon", name=name, scan=SCAN, **kw)
        made.append(d)
        return d

    try:
        yield make
    finally:
        for d in made:
            d.stop()


def ready(d: DaemonProcess, world: World, timeout: float = 60) -> None:
    from keeper.faults.process import http_get

    d.wait_until(lambda: http_get(d.url + "/readyz")[0] == 200, "readiness", timeout, between=world.mine)


def settle(d: DaemonProcess, world: World, quiet_seconds: float = 2.0, timeout: float = 90) -> int:
    """Wait until nothing is pending and no rebalance happened for `quiet_seconds` (follow-ups included)."""
    last, since = world.rebalances(), time.monotonic()

    def still() -> bool:
        nonlocal last, since
        now = world.rebalances()
        if now != last or d.value("keeper_pending_transactions") != 0:
            last, since = now, time.monotonic()
        return time.monotonic() - since >= quiet_seconds

    d.wait_until(still, "quiet", timeout, between=world.mine_many)
    return world.rebalances()


def rebalanced_after(d: DaemonProcess, world: World, before: int, what: str, timeout: float = 60) -> float:
    return d.wait_until(lambda: world.rebalances() > before, what, timeout, between=world.mine)
