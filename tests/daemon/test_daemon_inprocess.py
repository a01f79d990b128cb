"""The daemon in-process on the devnet: liveness vs readiness in an RPC outage, the alert series (oldest
pending age, last rebalance seeded from chain, deadline), the oracle guard's medians reaching decide and
netting, still-wanted re-planning before a replacement, the per-vault fee ledger across a restart, the
rate-limit window rebuilt from the journal, log context, the send-path RPC metrics and the kill hook."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3
from web3.providers import HTTPProvider

from keeper import log
from keeper.account import ledger_from_json_dict, pool_id, record_from_json_dict, settle_all, vault_costs
from keeper.config import load_config, render_toml
from keeper.daemon.app import ACCOUNTED, ATTRIBUTION, LEDGER_KEY, PENDING, KeeperApp, Reminder
from keeper.daemon.fee_ledger import CHARGE
from keeper.daemon.http import Health
from keeper.daemon.schedule import Daemon, Timing
from keeper.devnet.anvil import DEV_ACCOUNTS, free_port, rpc
from keeper.devnet.market import Market
from keeper.devnet.session import devnet_config
from keeper.errors import ConfigError
from keeper.snapshot import feed_price_usd30
from keeper.store import State

pytestmark = pytest.mark.anvil
GWEI = 10**9
USER_A, USER_B = (Web3.to_checksum_address(a) for a in DEV_ACCOUNTS[4:6])


def make_app(anvil: Any, deployment: Any, state: Path, *, start: bool = True, **sections: dict[str, Any]) -> KeeperApp:
    """An in-process KeeperApp on the devnet (confirmations 1); `sections` are merged into the config."""
    config: dict[str, Any] = devnet_config(anvil, deployment)
    config["state_dir"] = str(state)
    config["metrics"] = {"host": "127.0.0.1", "port": free_port()}
    config["chain"] = {**config["chain"], "confirmations": 1}
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    state.mkdir(parents=True, exist_ok=True)
    path = state.parent / f"{state.name}.toml"
    path.write_text(render_toml(config))
    app = KeeperApp(load_config(path))
    if start:
        app.start()
    return app


def sample(app: KeeperApp, name: str, **labels: str) -> float | None:
    return app.metrics.registry.get_sample_value(name, labels or None)


def mine(anvil: Any, blocks: int = 1) -> None:
    for _ in range(blocks):
        rpc(anvil.url, "evm_mine")


def settle(app: KeeperApp, w3: Any, anvil: Any, rounds: int = 40) -> None:
    """In-flight ticks and blocks until every submitted rebalance is accounted."""
    for _ in range(rounds):
        app.on_in_flight(w3.eth.block_number)
        pending = [k for k, _ in _pending(app)]
        if all(app.store.get_state(f"{ACCOUNTED}:{i}") is not None for i in pending):
            return
        mine(anvil)
    raise AssertionError([(r.id, r.state, r.error) for r in app.store.all_intents(app._keeper_address())])


def _pending(app: KeeperApp) -> list[tuple[int, str]]:
    out = []
    for r in app.store.all_intents(app._keeper_address()):
        text = app.store.get_state(f"{PENDING}:{r.id}")
        if text is not None:
            out.append((r.id, text))
    return out


def unfit(w3: Any, deployment: Any) -> None:
    """ETH +33%: every vault drifts beyond 10%, so the next tick plans a rebalance (the seed is the keeper's own
    fit: right after deployment nothing is planned)."""
    Market(w3, deployment).set_prices({"WETH": Decimal(4000)})


def fit(app: KeeperApp, w3: Any, anvil: Any, rounds: int = 6) -> None:
    """Rebalance until the keeper plans nothing at the current prices."""
    for _ in range(rounds):
        before = len(_pending(app))
        app.on_block(w3.eth.block_number)
        if len(_pending(app)) == before:
            return
        settle(app, w3, anvil)
        mine(anvil)
    raise AssertionError("still planning after several rebalances")


@pytest.fixture
def no_automine(anvil: Any) -> Iterator[Callable[[bool], None]]:
    def set_automine(on: bool) -> None:
        rpc(anvil.url, "evm_setAutomine", [on])

    try:
        yield set_automine
    finally:
        rpc(anvil.url, "anvil_setNextBlockBaseFeePerGas", [hex(GWEI)])
        set_automine(True)
        mine(anvil)


@pytest.fixture
def json_log(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The keeper's own JSON lines written since the last call (the first call, in the test, sets up JSON
    logging to the captured stdout of the test's call phase)."""
    import logging

    handlers = logging.getLogger().handlers[:]
    configured = []

    def lines() -> list[dict[str, Any]]:
        if not configured:
            log.configure("INFO", json=True)
            configured.append(True)
        out = capsys.readouterr().out
        return [json.loads(x) for x in out.splitlines() if x.startswith("{")]

    try:
        yield lines
    finally:
        logging.getLogger().handlers[:] = handlers


# --- 1. liveness vs readiness ------------------------------------------------------------------------------------
def test_rpc_outage_fails_readiness_but_not_liveness(anvil: Any, deployment: Any, chain: None, tmp_path: Path) -> None:
    app = make_app(anvil, deployment, tmp_path / "state")
    try:
        live_clients = app.endpoints.clients
        dead = f"http://127.0.0.1:{free_port()}"
        app.endpoints.clients = [Web3(HTTPProvider(dead, request_kwargs={"timeout": 2}))]
        health: Health = app.health
        daemon = Daemon(head=app.head, on_block=app.on_block, on_in_flight=lambda n: None, health=health,
                        metrics=app.metrics, timing=Timing(poll_seconds=0.05, grace_seconds=10))
        daemon.start()
        try:
            _wait(lambda: (sample(app, "keeper_ticks_total", result="read_error") or 0) >= 2)
            assert health.live()[0] is True  # the watcher runs: Kubernetes must not restart the pod
            ready, body = health.ready()
            assert ready is False and body["checks"]["chain"]["ok"] is False
            assert (sample(app, "keeper_heartbeat_timestamp_seconds") or 0) > 0
            assert sample(app, "keeper_ready") == 0
            app.endpoints.clients = live_clients  # the node is back: ready again on the next poll
            _wait(lambda: health.ready()[0])
            assert sample(app, "keeper_ready") == 1
        finally:
            assert daemon.stop()
    finally:
        app.close()


def _wait(cond: Callable[[], Any], timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


# --- 2. alert series --------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("chain")
def test_last_rebalance_and_deadline_are_seeded_from_chain_after_a_restart(
    anvil: Any, w3: Any, deployment: Any, tmp_path: Path, c: Any
) -> None:
    app = make_app(anvil, deployment, tmp_path / "state", default_rules={"cycle_seconds": 7200})
    try:
        app.on_block(w3.eth.block_number)  # a fresh process: nothing accounted by it yet
        last_cycle = c("VaultManager").functions.lastCycleAt().call()
        for vault in ("0", "1", "2"):
            assert sample(app, "keeper_last_successful_rebalance_timestamp_seconds", vault=vault) == last_cycle
            assert sample(app, "keeper_rebalance_deadline_seconds", vault=vault) == 7200
    finally:
        app.close()


@pytest.mark.usefixtures("chain")
def test_oldest_pending_age_follows_a_stuck_transaction(
    anvil: Any, w3: Any, deployment: Any, tmp_path: Path, no_automine: Callable[[bool], None]
) -> None:
    unfit(w3, deployment)
    app = make_app(anvil, deployment, tmp_path / "state", gas={"replace_after_blocks": 50})
    try:
        no_automine(False)
        head = w3.eth.block_number
        app.on_block(head)  # every vault drifted: a rebalance is planned
        app.on_in_flight(head)
        (record,) = app.store.in_flight(app._keeper_address())
        assert record.state is State.BROADCAST
        assert sample(app, "keeper_oldest_pending_transaction_age_seconds") == 0  # sent in this very block
        rpc(anvil.url, "anvil_setNextBlockBaseFeePerGas", [hex(500 * GWEI)])  # too dear for it: it stays out
        rpc(anvil.url, "evm_increaseTime", [120])
        mine(anvil)
        app.on_in_flight(w3.eth.block_number)
        assert app.store.get(record.id).state is State.BROADCAST
        assert (sample(app, "keeper_oldest_pending_transaction_age_seconds") or 0) >= 120
        rpc(anvil.url, "anvil_setNextBlockBaseFeePerGas", [hex(GWEI // 100)])
        no_automine(True)
        settle(app, w3, anvil)
        assert sample(app, "keeper_oldest_pending_transaction_age_seconds") == 0
    finally:
        app.close()


# --- 3. the oracle guard's medians reach decide; netting and bounds stay at the contract's feeds -----------------
def test_decide_prices_at_the_guard_median_netting_at_the_contract_feeds(
    anvil: Any, w3: Any, deployment: Any, chain: None, tmp_path: Path
) -> None:
    from keeper.devnet.deploy import send
    from keeper.net import leg_bound

    app = make_app(anvil, deployment, tmp_path / "state", safety={"dry_run": True})
    try:
        vm = w3.eth.contract(address=deployment.vault_manager, abi=app._vm_abi)
        send(w3, vm.functions.setLimits(120, 1_850, 1_000, 100), deployment.owner)  # maxSlippageBps 100 → 120
        Market(w3, deployment).set_prices({"WETH": Decimal(3450)})  # every vault drifts: a plan with GLP legs
        raw = app.read(w3.eth.block_number)
        weth = raw.asset_index("WETH")
        feed = feed_price_usd30(raw.assets[weth])
        # GMX quotes WETH 0.4% above Chainlink on both sides: sources (p, 1.004p, 1.004p) → median 1.004p
        dear = feed * 10_040 // 10_000
        assets = list(raw.assets)
        assets[weth] = replace(assets[weth], gmx_min_price=dear, gmx_max_price=dear)
        shifted = replace(raw, assets=tuple(assets))
        app.read = lambda block: shifted  # type: ignore[method-assign]
        app.on_block(raw.block_number)
        memory = app.load_memory()
        assert dict(memory.marks)["WETH"] == dear  # the decision's marks are the median, not the raw answer
        ev = app._evaluate(replace(shifted, memory=memory))
        assert feed_price_usd30(ev.snap.assets[weth]) == dear
        assert ev.plan is not None and ev.plan.vaults
        net = app.build_order(shifted, ev.plan)  # what _submit nets: the raw snapshot
        assert net.oracle.token_price[weth] == feed  # the contract's valuation, not the median
        assert net.max_slippage_bps == 120 == app.max_slippage_bps(raw.block_number)  # read from chain
        assert net.order.glp
        for leg in net.order.glp:  # the contract's own rule at the feeds, rounding included
            minimum, required = leg_bound(leg, net.oracle, 120)
            assert minimum >= required
        # and the chain agrees: the rebalance simulates without BoundTooLoose at the real contract
        # (FillOutsideBound is possible here only because the test's GMX quote is not GMX's real price)
        data = app.calldata(net)
        answer = w3.provider.make_request(
            "eth_call", [{"from": app._keeper_address(), "to": deployment.vault_manager, "data": "0x" + data.hex()},
                         hex(raw.block_number)])
        if "error" in answer:
            from keeper.execute.revert import ErrorDecoder

            raw_data = answer["error"].get("data") or "0x"
            decoded = ErrorDecoder.from_abi_dir().decode(bytes.fromhex(str(raw_data).removeprefix("0x")))
            assert decoded.name != "BoundTooLoose", decoded.describe()
    finally:
        app.close()


@pytest.mark.usefixtures("chain")
def test_a_stale_stablecoin_feed_blocks_every_glp_trade(
    anvil: Any, w3: Any, deployment: Any, tmp_path: Path, json_log: Callable[[], list[dict[str, Any]]]
) -> None:
    app = make_app(anvil, deployment, tmp_path / "state")
    try:
        Market(w3, deployment).set_prices({"WETH": Decimal(3450)})  # every vault drifts
        raw = app.read(w3.eth.block_number)
        usdc = raw.asset_index("USDC")
        assets = list(raw.assets)
        assets[usdc] = replace(assets[usdc], feed_updated_at=raw.block_timestamp - 10 * 3600)
        stale = replace(raw, assets=tuple(assets))
        app.read = lambda block: stale  # type: ignore[method-assign]
        json_log()
        app.on_block(raw.block_number)
        assert app.store.all_intents(app._keeper_address()) == []
        assert sample(app, "keeper_oracle_guard_tripped", asset="USDC") == 1
        blocked = [x for x in json_log() if x["event"] == "oracle guard: no trade"]
        assert blocked and blocked[0]["blocking"] == ["USDC"] and blocked[0]["block"] == raw.block_number
        ev = app._evaluate(replace(stale, memory=app.load_memory()))
        assert ev.plan is not None and ev.blocked == {"USDC"}
    finally:
        app.close()


# --- 5. still wanted before a replacement -------------------------------------------------------------------------
@pytest.mark.usefixtures("chain")
def test_a_stuck_rebalance_whose_condition_disappeared_is_cancelled_not_bumped(
    anvil: Any, w3: Any, deployment: Any, tmp_path: Path, no_automine: Callable[[bool], None]
) -> None:
    app = make_app(anvil, deployment, tmp_path / "state", gas={"replace_after_blocks": 1})
    try:
        fit(app, w3, anvil)  # books fitted at ETH $3000: nothing planned any more
        market = Market(w3, deployment)
        market.set_prices({"WETH": Decimal(3450)})
        no_automine(False)
        head = w3.eth.block_number
        app.on_block(head)
        app.on_in_flight(head)
        record = max(app.store.in_flight(app._keeper_address()), key=lambda r: r.id)  # (the fit's are mined)
        assert record.state is State.BROADCAST
        # the price moves back while the rebalance sits in the mempool (its fee is below the next base fee)
        rpc(anvil.url, "anvil_setNextBlockBaseFeePerGas", [hex(50 * GWEI)])
        feed = w3.eth.contract(address=deployment.feeds["WETH"], abi=market._feeds["WETH"].abi)
        feed.functions.setAnswer(3000 * 10**8).transact(
            {"from": deployment.owner, "maxFeePerGas": 1000 * GWEI, "maxPriorityFeePerGas": GWEI}
        )
        mine(anvil, 2)
        app.on_in_flight(w3.eth.block_number)
        after = app.store.get(record.id)
        assert [a.kind for a in app.store.attempts(record.id)] == ["original", "cancel"]  # not a replacement
        assert after.cancel_reason == "not_wanted"
        no_automine(True)
        settle(app, w3, anvil)
        final = app.store.get(record.id)
        assert final.outcome == "cancelled"
        assert (sample(app, "keeper_failed_transaction_gas_wei_total", result="cancelled") or 0) > 0
    finally:
        app.close()


@pytest.mark.usefixtures("chain")
def test_the_next_rebalance_waits_until_the_last_one_is_confirmed_and_accounted(
    anvil: Any, w3: Any, deployment: Any, tmp_path: Path
) -> None:
    """Mined is not enough: until a rebalance is accounted the decision memory (OI applied, timers, marks) is
    the one from before it, so deciding on the books it already changed would plan the same refit again."""
    unfit(w3, deployment)
    app = make_app(anvil, deployment, tmp_path / "state", chain={"confirmations": 6})
    try:
        app.on_block(w3.eth.block_number)
        (first,) = [r for r in app.store.all_intents(app._keeper_address()) if r.intent.kind == "call"]
        for _ in range(3):  # automine: mined when sent; the in-flight job sees the receipt within a block or two
            app.on_in_flight(w3.eth.block_number)
            if app.store.get(first.id).state is State.MINED:
                break
            mine(anvil)
        assert app.store.get(first.id).state is State.MINED  # mined, not yet confirmed (6 blocks)
        Market(w3, deployment).set_prices({"WETH": Decimal(3300)})  # every vault drifts again
        app.on_block(w3.eth.block_number)
        assert [r.id for r in app.store.all_intents(app._keeper_address()) if r.intent.kind == "call"] == [first.id]
        settle(app, w3, anvil)  # confirmed (3 blocks) and accounted: its memory is saved
        app.on_block(w3.eth.block_number)
        calls = [r for r in app.store.all_intents(app._keeper_address()) if r.intent.kind == "call"]
        assert len(calls) == 2, "once accounted, the drift it did not cover is planned"
    finally:
        app.close()


def test_still_wanted_keeps_the_intent_when_the_read_fails(
    anvil: Any, w3: Any, deployment: Any, chain: None, tmp_path: Path
) -> None:
    from keeper.errors import ReadError

    unfit(w3, deployment)
    app = make_app(anvil, deployment, tmp_path / "state")
    try:
        head = w3.eth.block_number
        app.on_block(head)
        (record,) = app.store.in_flight(app._keeper_address())

        def down(block: int) -> Any:
            raise ReadError("node down")

        app.read = down  # type: ignore[method-assign]
        app._in_flight_head = head
        assert app._still_wanted(record) is True  # a transient error never cancels a wanted rebalance
        app._replanned = None
        app.switches.pause_file.write_text("stop\n")
        assert app._still_wanted(record) is False
    finally:
        app.close()


# --- 6. the fee ledger within each vault --------------------------------------------------------------------------
def test_fee_ledger_charges_each_vaults_depositors_its_own_cost_and_survives_a_restart(
    anvil: Any, w3: Any, deployment: Any, chain: None, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    unfit(w3, deployment)
    app = make_app(anvil, deployment, state)
    try:
        app.on_block(w3.eth.block_number)
        settle(app, w3, anvil)
        doc = json.loads(app.store.get_state(LEDGER_KEY) or "{}")
        (record,) = [json.loads(v) for _, v in app.store.records(ATTRIBUTION)]
        eth = app.read(w3.eth.block_number)  # prices have not moved since the plan: the same ETH mark
        costs = vault_costs(record_from_json_dict(record), feed_price_usd30(eth.assets[eth.asset_index("WETH")]))
        ledger = ledger_from_json_dict(doc["ledger"])
        for v, cost in costs.items():
            pool = ledger.pool(pool_id(v))
            assert pool.total_cost == cost  # the vault's own attributed fee + gas, not a share of the total
            assert {h.holder_id for h in pool.holders} == {USER_A, USER_B}  # its depositors, from chain
        assert sum(costs.values()) > 0
    finally:
        app.close()

    # user A deposits into vault 1 between the rebalances: a position change, so A settles at rebalance 2
    market = Market(w3, deployment)
    market.deposit(USER_A, 1, 5 * 10**18)
    market.set_prices({"WETH": Decimal(3450)})
    app = make_app(anvil, deployment, state)  # a new process on the same journal
    try:
        first = json.loads(app.store.get_state(LEDGER_KEY) or "{}")["last_rebalance_id"]
        app.on_block(w3.eth.block_number)
        settle(app, w3, anvil)
        doc = json.loads(app.store.get_state(LEDGER_KEY) or "{}")
        assert doc["last_rebalance_id"] > first
        ledger = ledger_from_json_dict(doc["ledger"])
        charges = [json.loads(v) for _, v in app.store.records(CHARGE)]
        second = [c for c in charges if c["rebalance_id"] == doc["last_rebalance_id"] and c["vault_id"] == 1]
        assert second, charges  # vault 1 took part (it had a deposit to process)
        assert dict(map(tuple, second[0]["settled"])).get(USER_A, 0) > 0  # A settled for #1 when it deposited
        assert USER_B not in dict(map(tuple, second[0]["settled"]))  # B's position did not change
        assert ledger.pool(pool_id(1)).counter == 2
        assert {c["rebalance_id"] for c in charges} >= {first, doc["last_rebalance_id"]}  # the restart kept #1
        for pool in ledger.pools:
            settled, _ = settle_all(ledger, pool.pool_id)
            after = settled.pool(pool.pool_id)
            assert after.total_charged == after.total_cost  # charged == cost after settlement
        assert (sample(app, "keeper_fee_ledger_cost_usd", vault="0") or 0) > 0
    finally:
        app.close()


# --- 7. the rate-limit window, log context, signer-balance reminder ----------------------------------------------
def test_rate_limit_window_is_rebuilt_from_the_journal(
    anvil: Any, w3: Any, deployment: Any, chain: None, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    unfit(w3, deployment)
    app = make_app(anvil, deployment, state, safety={"max_rebalances_per_hour": 1})
    try:
        app.on_block(w3.eth.block_number)
        settle(app, w3, anvil)
        submitted = list(app._submitted)
    finally:
        app.close()
    Market(w3, deployment).set_prices({"WETH": Decimal(3450)})  # −14%: a drift, not urgent (HF stays above 1.2)
    app = make_app(anvil, deployment, state, safety={"max_rebalances_per_hour": 1})
    try:
        assert app._submitted == submitted and len(submitted) == 1
        count = len(app.store.all_intents(app._keeper_address()))
        app.on_block(w3.eth.block_number)
        assert len(app.store.all_intents(app._keeper_address())) == count  # held back: one per hour
    finally:
        app.close()


@pytest.mark.usefixtures("chain")
def test_every_line_of_a_job_carries_block_and_intent_context(
    anvil: Any, w3: Any, deployment: Any, tmp_path: Path, json_log: Callable[[], list[dict[str, Any]]]
) -> None:
    unfit(w3, deployment)
    app = make_app(anvil, deployment, tmp_path / "state")
    try:
        json_log()
        app.on_block(w3.eth.block_number)
        settle(app, w3, anvil)
        lines = [x for x in json_log() if x.get("logger", "").startswith("keeper.")]
        assert lines and all("block" in x for x in lines), [x for x in lines if "block" not in x][:3]
        submitted = [x for x in lines if x["event"] == "rebalance submitted"]
        charged = [x for x in lines if x["event"] == "fee ledger: rebalance charged"]
        assert submitted and "intent_id" in submitted[0]
        assert charged and all("vault" in x and "intent_id" in x for x in charged)
    finally:
        app.close()


@pytest.mark.usefixtures("chain")
def test_signer_balance_warning_on_transitions_gauge_every_block(
    anvil: Any, w3: Any, deployment: Any, tmp_path: Path, json_log: Callable[[], list[dict[str, Any]]]
) -> None:
    app = make_app(anvil, deployment, tmp_path / "state",
                   safety={"min_signer_balance_wei": 10**30, "dry_run": True})
    try:
        json_log()
        for _ in range(3):
            mine(anvil)
            app.on_block(w3.eth.block_number)
        warnings = [x for x in json_log() if x["event"] == "signer balance below minimum"]
        assert len(warnings) == 1  # once when it starts, not once per block
        assert (sample(app, "keeper_signer_balance_wei") or 0) > 0
    finally:
        app.close()


def test_reminder_logs_on_transitions_and_at_most_every_interval() -> None:
    now = {"t": 0.0}
    r = Reminder(600, clock=lambda: now["t"])
    assert [r.update(False), r.update(True), r.update(True)] == [None, "raised", None]
    now["t"] = 599
    assert r.update(True) is None
    now["t"] = 600
    assert r.update(True) == "again"
    assert [r.update(False), r.update(False), r.update(True)] == ["cleared", None, "raised"]


# --- 8, 9. send-path RPC metrics and the kill hook ----------------------------------------------------------------
def test_send_path_requests_are_counted_per_endpoint(anvil: Any, deployment: Any, chain: None, tmp_path: Path) -> None:
    app = make_app(anvil, deployment, tmp_path / "state")
    try:
        before = sample(app, "keeper_rpc_requests_total", endpoint="rpc0") or 0
        latency = sample(app, "keeper_rpc_latency_seconds_count", endpoint="rpc0") or 0
        app._send_chain.pool.request("eth_blockNumber", [])
        assert sample(app, "keeper_rpc_requests_total", endpoint="rpc0") == before + 1
        assert sample(app, "keeper_rpc_latency_seconds_count", endpoint="rpc0") == latency + 1
    finally:
        app.close()


@pytest.mark.usefixtures("chain")
def test_fault_kill_hook_is_wired_only_when_asked(
    anvil: Any, deployment: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    json_log: Callable[[], list[dict[str, Any]]],
) -> None:
    app = make_app(anvil, deployment, tmp_path / "a")
    try:
        assert app.pipeline._on_persist is None
    finally:
        app.close()
    monkeypatch.setenv("KEEPER_FAULT_KILL_AT", "confirmed@1000")  # never reached here
    json_log()
    app = make_app(anvil, deployment, tmp_path / "b")
    try:
        assert app.pipeline._on_persist is not None
        assert any("FAULT INJECTION ARMED" in x["event"] for x in json_log())
    finally:
        app.close()
    monkeypatch.setenv("KEEPER_FAULT_KILL_AT", "nowhere")
    app = make_app(anvil, deployment, tmp_path / "c", start=False)
    try:
        with pytest.raises(ConfigError, match="KEEPER_FAULT_KILL_AT"):
            app.start()
    finally:
        app.close()
