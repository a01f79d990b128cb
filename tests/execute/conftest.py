"""Fixtures for the execution tests: a private anvil per test (mining mode varies), a journal, a pipeline."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from keeper.devnet.anvil import DEV_ACCOUNTS, DEV_KEYS, Anvil, rpc
from keeper.execute.chain import RpcChain, connect
from keeper.execute.gas import GWEI, Fees, GasPolicy
from keeper.execute.metrics import ExecutionMetrics
from keeper.execute.pipeline import Pipeline, PipelineConfig
from keeper.execute.signer import LocalSigner, Signer
from keeper.store import PostgresStore, SqliteStore, Store

CHAIN_ID = 31337
SENDER = DEV_ACCOUNTS[0]


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    """Automine on; `--slots-in-an-epoch 1` makes the finalized tag trail the head by 2 blocks."""
    with Anvil.start(extra_args=("--slots-in-an-epoch", "1")) as node:
        yield node


def mine(node: Anvil, blocks: int = 1) -> None:
    for _ in range(blocks):
        rpc(node.url, "evm_mine")


def automine(node: Anvil, on: bool) -> None:
    rpc(node.url, "evm_setAutomine", [on])


def set_next_base_fee(node: Anvil, wei: int) -> None:
    rpc(node.url, "anvil_setNextBlockBaseFeePerGas", [hex(wei)])


def balance(node: Anvil, address: str) -> int:
    return int(str(rpc(node.url, "eth_getBalance", [address, "latest"])), 16)


def nonce(node: Anvil, address: str = SENDER, tag: str = "latest") -> int:
    return int(str(rpc(node.url, "eth_getTransactionCount", [address, tag])), 16)


def fresh_address() -> str:
    from eth_utils.address import to_checksum_address

    return to_checksum_address("0x" + secrets.token_hex(20))


def attempt_fees(attempt: Any) -> Fees:
    """An attempt's stored fees as `Fees` (EIP-1559 or legacy)."""
    if attempt.gas_price is not None:
        return Fees(gas_price=attempt.gas_price)
    return Fees(max_fee=attempt.max_fee, priority_fee=attempt.priority_fee)


def dev_signer(index: int = 0) -> Signer:
    return LocalSigner(bytes.fromhex(DEV_KEYS[index][2:]), f"dev:{index}")


@dataclass
class Harness:
    node: Anvil
    chain: RpcChain
    store: Store
    pipeline: Pipeline
    metrics: ExecutionMetrics
    alerts: list[tuple[str, str]] = field(default_factory=list)
    persisted: list[str] = field(default_factory=list)

    def settle(self, max_ticks: int = 40, blocks_per_tick: int = 1) -> None:
        """Tick, mine, repeat until nothing is in flight."""
        left = self.pipeline.run_until_settled(lambda: mine(self.node, blocks_per_tick), max_ticks)
        assert left == [], [(r.id, r.state, r.error) for r in left]


HarnessFactory = Callable[..., Harness]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Callable[[str], Store]]:
    opened: list[Store] = []
    schemas: list[str] = []

    def open_journal(kind: str = "sqlite") -> Store:
        store: Store
        if kind == "postgres":
            url = os.environ.get("KEEPER_TEST_DATABASE_URL")
            if not url:
                pytest.skip("KEEPER_TEST_DATABASE_URL is not set: PostgreSQL journal tests skipped")
            schema = f"keeper_test_{secrets.token_hex(6)}"
            schemas.append(schema)
            store = PostgresStore(url, schema=schema)
        else:
            store = SqliteStore(tmp_path / "journal.sqlite3")
        opened.append(store)
        return store

    yield open_journal
    for store in opened:
        store.close()
    url = os.environ.get("KEEPER_TEST_DATABASE_URL")
    if schemas and url:
        from tests.store.conftest import drop_schema

        for schema in schemas:
            drop_schema(url, schema)


@pytest.fixture
def store_kind() -> str:
    """The journal backend of `harness` by default; a module parametrizes `store_kind` to run on both."""
    return "sqlite"


@pytest.fixture
def harness(anvil: Anvil, journal: Callable[[str], Store], store_kind: str) -> HarnessFactory:
    default_kind = store_kind

    def build(
        *,
        store_kind: str = default_kind,
        signer: Signer | None = None,
        gas: GasPolicy | None = None,
        chain: RpcChain | None = None,
        **config: Any,
    ) -> Harness:
        metrics = ExecutionMetrics()
        rpc_chain = chain or connect([anvil.url], CHAIN_ID, timeout=5.0)
        store = journal(store_kind)
        alerts: list[tuple[str, str]] = []
        persisted: list[str] = []
        settings: dict[str, Any] = {"confirmations": 2, "stuck_blocks": 3, **config}
        pipeline = Pipeline(
            store,
            rpc_chain,
            signer or dev_signer(),
            PipelineConfig(chain_id=CHAIN_ID, gas=gas or GasPolicy(max_fee_cap=1000 * GWEI), **settings),
            metrics=metrics,
            alert=lambda kind, message: alerts.append((kind, message)),
            on_persist=lambda label, _record: persisted.append(label),
        )
        return Harness(anvil, rpc_chain, store, pipeline, metrics, alerts, persisted)

    return build

