"""The LYF strategy in the daemon, in-process on the devnet (the reference system plus the LYF system):
a price move fires the triggers, the rebalance goes through the execution pipeline exactly once and lands
on target leverage and neutral; dry run and pause send nothing; the allow-list admits only the position's
`rebalance`."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from keeper.chain.lyf_reader import read_lyf_state
from keeper.daemon.app import KeeperApp
from keeper.daemon.lyf_job import MEMORY
from keeper.decide.lyf import position
from keeper.devnet.anvil import Anvil, rpc
from keeper.devnet.deploy import Deployment, contract
from keeper.devnet.lyf import LyfDeployment, deploy_lyf, move_price
from keeper.devnet.session import lyf_position_config
from tests.daemon.test_switches import app_for as switches_app_for
from tests.daemon.test_switches import sample

pytestmark = pytest.mark.anvil
WAD = 10**18


@pytest.fixture(scope="module")
def lyf(w3: Web3, anvil: Anvil, deployment: Deployment) -> Iterator[LyfDeployment]:
    snapshot = rpc(anvil.url, "evm_snapshot")
    try:
        yield deploy_lyf(w3)
    finally:
        assert rpc(anvil.url, "evm_revert", [snapshot]), "evm_revert failed"


def app_for(anvil: Anvil, deployment: Deployment, lyf: LyfDeployment, tmp_path: Path, **safety: Any) -> KeeperApp:
    return switches_app_for(anvil, deployment, tmp_path, {"lyf": {"positions": [lyf_position_config(lyf, "avax")]}},
                            **safety)


def lyf_intents(app: KeeperApp, deployment: Deployment, lyf: LyfDeployment) -> list[Any]:
    return [r for r in app.store.all_intents(deployment.keeper) if r.intent.to.lower() == lyf.position.lower()]


def settle(app: KeeperApp, anvil: Anvil, w3: Web3, blocks: int = 12) -> None:
    """Mine blocks and run the in-flight job until every intent is final (the seeded vaults' first refit
    goes out on the first tick)."""
    for _ in range(blocks):
        rpc(anvil.url, "evm_mine")
        app.on_in_flight(w3.eth.block_number)


def price_moves(anvil: Anvil, w3: Web3, lyf: LyfDeployment) -> None:
    """30 days of interest and rewards, then AVAX +10% (the feed is fresh: it is set after the time jump)."""
    rpc(anvil.url, "evm_increaseTime", [30 * 86_400])
    rpc(anvil.url, "evm_mine")
    move_price(w3, lyf, Fraction(11, 10))


def test_a_price_move_is_rebalanced_once_through_the_pipeline(  # noqa: PLR0917
    anvil: Anvil, w3: Web3, deployment: Deployment, lyf: LyfDeployment, chain: None, tmp_path: Path
) -> None:
    app = app_for(anvil, deployment, lyf, tmp_path)
    app.on_block(w3.eth.block_number)  # first sight: the position is taken as fitted at this price
    assert app.store.get_state(f"{MEMORY}:avax") is not None
    assert lyf_intents(app, deployment, lyf) == []
    settle(app, anvil, w3)
    price_moves(anvil, w3, lyf)
    before = position(read_lyf_state(w3, lyf, w3.eth.block_number))
    assert before.leverage > Fraction(305, 100) and before.delta < 0

    app.on_block(w3.eth.block_number)
    assert len(lyf_intents(app, deployment, lyf)) == 1
    settle(app, anvil, w3, 20)  # the in-flight job carries it to confirmation
    (record,) = lyf_intents(app, deployment, lyf)
    assert record.outcome == "success", record

    pos = contract(w3, "LyfPosition", lyf.position)
    leverage = Fraction(pos.functions.leverageWad().call(), WAD)
    delta = pos.functions.delta().call()
    debt_volatile = pos.functions.debts().call()[0]
    assert abs(leverage - 3) < Fraction(1, 10**6), leverage
    # executed a block after the read: the volatile debt grew by those seconds of interest (≈ 6.6e13/s)
    assert abs(delta) < 10**15 and abs(delta) * 10**4 < debt_volatile, delta
    assert sample(app, "keeper_lyf_rebalances_total", position="avax", result="success") == 1
    assert sample(app, "keeper_lyf_triggers_total", position="avax", trigger="price") == 1
    assert abs(sample(app, "keeper_lyf_leverage_ratio", position="avax") - float(before.leverage)) < 1e-9

    # the memory moved to the executed price: the next blocks plan nothing more
    app.on_block(w3.eth.block_number)
    rpc(anvil.url, "evm_mine")
    app.on_block(w3.eth.block_number)
    assert len(lyf_intents(app, deployment, lyf)) == 1


def test_dry_run_and_pause_send_nothing(  # noqa: PLR0917
    anvil: Anvil, w3: Web3, deployment: Deployment, lyf: LyfDeployment, chain: None, tmp_path: Path
) -> None:
    dry = app_for(anvil, deployment, lyf, tmp_path / "dry", dry_run=True)
    dry.on_block(w3.eth.block_number)
    paused = app_for(anvil, deployment, lyf, tmp_path / "paused")
    paused.on_block(w3.eth.block_number)
    settle(paused, anvil, w3)
    paused.switches.pause_file.parent.mkdir(parents=True, exist_ok=True)
    paused.switches.pause_file.write_text("maintenance\n")
    price_moves(anvil, w3, lyf)
    nonce = w3.eth.get_transaction_count(deployment.keeper)
    dry.on_block(w3.eth.block_number)
    paused.on_block(w3.eth.block_number)
    assert sample(dry, "keeper_lyf_rebalances_total", position="avax", result="dry_run_ok") == 1  # would succeed
    assert sample(paused, "keeper_lyf_rebalances_total", position="avax", result="dry_run_ok") == 0
    assert w3.eth.get_transaction_count(deployment.keeper) == nonce
    assert lyf_intents(paused, deployment, lyf) == []


def test_the_allow_list_admits_only_the_positions_rebalance(
    anvil: Anvil, deployment: Deployment, lyf: LyfDeployment, chain: None, tmp_path: Path
) -> None:
    app = app_for(anvil, deployment, lyf, tmp_path)
    assert app.lyf is not None
    rebalance = app.lyf._selector
    assert app._allowed(lyf.position, rebalance + b"\x00" * 192)
    assert not app._allowed(lyf.position, bytes.fromhex("deadbeef"))  # another function of the position
    assert not app._allowed(lyf.pair, rebalance)  # another contract
    narrowed = app_for(anvil, deployment, lyf, tmp_path / "narrow", allowed_selectors=["0xdeadbeef"])
    assert not narrowed._allowed(lyf.position, rebalance)


def test_a_plan_outside_the_positions_bounds_is_held_and_alerted_once(  # noqa: PLR0917
    anvil: Anvil, w3: Web3, deployment: Deployment, lyf: LyfDeployment, chain: None, tmp_path: Path
) -> None:
    """After a 15% fall the leverage is far below the contract's 2.90× floor: removing LP can only lower it
    further (re-levering is not a rebalance), so the plan would revert. Nothing is sent, every block."""
    app = app_for(anvil, deployment, lyf, tmp_path)
    app.on_block(w3.eth.block_number)
    settle(app, anvil, w3)
    move_price(w3, lyf, Fraction(85, 100))
    assert position(read_lyf_state(w3, lyf, w3.eth.block_number)).leverage < Fraction(29, 10)
    nonce = w3.eth.get_transaction_count(deployment.keeper)
    for _ in range(3):
        app.on_block(w3.eth.block_number)
        rpc(anvil.url, "evm_mine")
    assert lyf_intents(app, deployment, lyf) == []
    assert w3.eth.get_transaction_count(deployment.keeper) == nonce
    assert sample(app, "keeper_lyf_blocked", position="avax") == 1
    assert sample(app, "keeper_lyf_rebalances_total", position="avax", result="out_of_bounds") == 1  # once
    move_price(w3, lyf, Fraction(100, 85))  # back where it was: nothing to do, no longer blocked
    app.on_block(w3.eth.block_number)
    assert sample(app, "keeper_lyf_blocked", position="avax") == 0
