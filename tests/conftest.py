"""Shared fixtures. Anvil-backed fixtures start the node lazily: only tests that request them pay for it.

- `anvil` (session): one anvil process, always stopped by pid at session end.
- `w3` (session): a Web3 HTTP client for it.
- `deployment` (session): the reference system, deployed once.
- `chain` (function): `evm_snapshot` before the test, `evm_revert` after (isolates state changes).
- `c` (session): `c("VaultManager")` -> the web3 contract at the deployment's address.
- `record` (function): appends a RELIABILITY.md result row (keeper.faults.results) for a fault scenario; a test
  that fails or skips without recording still leaves a row (tests/faults/plugin.py).
- `secret_scan` (session) and the session hooks of tests/faults/plugin.py: every key the suites configure is
  scanned for in every test's output, subprocess output, *.log file and registered artifact; a leak fails
  the session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from web3 import Web3
from web3.contract import Contract

from keeper.devnet.anvil import Anvil, rpc
from keeper.devnet.deploy import Deployment, contract, deploy_reference_system
from tests.faults.plugin import (  # noqa: F401 - fixtures and hooks shared by every suite
    _session_temp,
    pytest_configure,
    pytest_runtest_logreport,
    pytest_runtest_logstart,
    pytest_runtest_makereport,
    pytest_sessionfinish,
    pytest_terminal_summary,
    pytest_unconfigure,
    record,
    secret_scan,
)


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    node = Anvil.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def w3(anvil: Anvil) -> Web3:
    return Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 30}))


@pytest.fixture(scope="session")
def deployment(w3: Web3) -> Deployment:
    return deploy_reference_system(w3)


@pytest.fixture
def chain(anvil: Anvil, deployment: Deployment) -> Iterator[Anvil]:
    snapshot = rpc(anvil.url, "evm_snapshot")
    try:
        yield anvil
    finally:
        reverted = rpc(anvil.url, "evm_revert", [snapshot])
        assert reverted, "evm_revert failed"


_ADDRESS_OF: dict[str, Callable[[Deployment], str]] = {
    "Vault": lambda d: d.gmx_vault,
    "GlpManager": lambda d: d.glp_manager,
    "GLP": lambda d: d.glp,
    "RewardRouterV2": lambda d: d.reward_router,
    "Pool": lambda d: d.pool,
    "Multicall3": lambda d: d.multicall,
    "VaultManager": lambda d: d.vault_manager,
}


@pytest.fixture(scope="session")
def c(w3: Web3, deployment: Deployment) -> Callable[..., Contract]:
    """`c("Pool")`, `c("USDC")` (a TestToken), `c("feed:WETH")` (a PriceFeed), or `c(name, address)`."""

    def get(name: str, address: str | None = None) -> Contract:
        if address is not None:
            return contract(w3, name, address)
        if name in deployment.tokens:
            return contract(w3, "TestToken", deployment.tokens[name])
        if name.startswith("feed:"):
            return contract(w3, "PriceFeed", deployment.feeds[name[5:]])
        return contract(w3, name, _ADDRESS_OF[name](deployment))

    return get
