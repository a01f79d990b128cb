"""Safety switches, exercised in-process on the devnet: dry run never signs, pause takes no decision,
the notional cap and the allow-list refuse before anything is signed, the rate limit holds back."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from keeper.config import load_config, render_toml
from keeper.daemon.app import MEMORY_KEY, KeeperApp
from keeper.devnet.anvil import free_port
from keeper.devnet.market import Market
from keeper.devnet.session import devnet_config

pytestmark = pytest.mark.anvil


def app_for(anvil: Any, deployment: Any, tmp_path: Path, extra: dict[str, Any] | None = None,
            **safety: Any) -> KeeperApp:
    """A started in-process KeeperApp on the devnet; `safety` settings and `extra` top-level sections."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = devnet_config(anvil, deployment)
    config["state_dir"] = str(tmp_path / "state")
    config["metrics"] = {"host": "127.0.0.1", "port": free_port()}
    config["safety"] = safety
    config.update(extra or {})
    path = tmp_path / "keeper.toml"
    path.write_text(render_toml(config))
    app = KeeperApp(load_config(path))
    app.start()
    return app


def sample(app: KeeperApp, name: str, **labels: str) -> float:
    return app.metrics.registry.get_sample_value(name, labels or None) or 0.0


def drift(w3: Any, deployment: Any) -> None:
    Market(w3, deployment).set_prices({"WETH": Decimal(3450)})  # every vault drifts past 5%


def test_dry_run_decides_nets_and_simulates_but_never_signs(
    anvil: Any, w3: Any, deployment: Any, chain: None, tmp_path: Path
) -> None:
    drift(w3, deployment)
    app = app_for(anvil, deployment, tmp_path, dry_run=True)
    nonce = w3.eth.get_transaction_count(deployment.keeper)
    app.on_block(w3.eth.block_number)
    assert app.signer is None and app.pipeline is None
    assert sample(app, "keeper_rebalances_total", result="dry_run_ok") == 1  # simulated: would succeed
    assert w3.eth.get_transaction_count(deployment.keeper) == nonce  # nothing signed or sent
    assert app.store.all_intents(deployment.keeper) == []


def test_pause_file_stops_new_decisions(anvil: Any, w3: Any, deployment: Any, chain: None, tmp_path: Path) -> None:
    drift(w3, deployment)
    app = app_for(anvil, deployment, tmp_path)
    app.switches.pause_file.parent.mkdir(parents=True, exist_ok=True)
    app.switches.pause_file.write_text("maintenance\n")
    app.on_block(w3.eth.block_number)
    assert sample(app, "keeper_paused") == 1
    assert app.store.get_state(MEMORY_KEY) is None  # no decision was taken
    # still read and exported while paused: the overdue-rebalance alert and the balance stay live
    assert sample(app, "keeper_rebalance_deadline_seconds", vault="0") > 0
    assert sample(app, "keeper_signer_balance_wei") > 0
    assert app.store.all_intents(deployment.keeper) == []
    app.switches.pause_file.unlink()
    app.on_block(w3.eth.block_number)
    assert sample(app, "keeper_paused") == 0
    assert len(app.store.all_intents(deployment.keeper)) == 1  # resumes at the next tick


def test_notional_cap_refuses_before_signing(anvil: Any, w3: Any, deployment: Any, chain: None, tmp_path: Path) -> None:
    drift(w3, deployment)
    app = app_for(anvil, deployment, tmp_path, max_notional_usd_per_rebalance=1_000)
    app.on_block(w3.eth.block_number)
    assert sample(app, "keeper_rebalances_total", result="over_notional_cap") == 1
    assert app.store.all_intents(deployment.keeper) == []


def test_allow_list_refuses_a_selector_outside_it(
    anvil: Any, w3: Any, deployment: Any, chain: None, tmp_path: Path
) -> None:
    drift(w3, deployment)
    app = app_for(anvil, deployment, tmp_path, allowed_selectors=["0xdeadbeef"])
    app.on_block(w3.eth.block_number)
    assert sample(app, "keeper_rebalances_total", result="not_allowed") == 1
    assert app.store.all_intents(deployment.keeper) == []
    assert not app._allowed("0x" + "11" * 20, bytes.fromhex("deadbeef"))  # wrong target, even if allowed


def test_rate_limit_holds_back_non_urgent_plans(
    anvil: Any, w3: Any, deployment: Any, chain: None, tmp_path: Path
) -> None:
    drift(w3, deployment)
    app = app_for(anvil, deployment, tmp_path, max_rebalances_per_hour=1)
    block = w3.eth.block_number
    app._submitted = [w3.eth.get_block(block)["timestamp"] - 10]  # one rebalance 10 s ago (chain time)
    app.on_block(block)
    assert app.store.all_intents(deployment.keeper) == []
