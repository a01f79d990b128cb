"""Abuse: malformed config, snapshot and CLI input; orders that break conservation or slippage bounds; the
allow-list. Bad input must never yield a traceback or a transaction; a bad order is stopped by simulation and,
when forced onto the chain, by the contract with a decoded custom error.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from keeper.config import render_toml
from keeper.devnet.anvil import DEV_KEYS, rpc
from keeper.devnet.session import devnet_config
from keeper.faults.process import metric
from tests.faults.conftest import CHILD_ENV, KEEPER, World, keeper_config

pytestmark = pytest.mark.anvil
REPO = Path(__file__).resolve().parents[2]


def _cases(world: World, tmp: Path, busy_port: int) -> list[tuple[str, list[str], dict[str, str], str | None]]:
    """(name, argv after `keeper`, extra env, stdin)."""
    base = devnet_config(world.anvil, world.deployment)
    base["state_dir"] = str(tmp / "state")

    def config(name: str, text: str) -> str:
        path = tmp / f"{name}.toml"
        path.write_text(text)
        return str(path)

    def variant(name: str, **sections: Any) -> str:
        data = json.loads(json.dumps(base))
        for key, value in sections.items():
            data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
        return config(name, render_toml(data))

    good = variant("good")
    snap = tmp / "snapshot.json"
    absurd = tmp / "absurd.json"
    (tmp / "list.json").write_text("[1, 2, 3]")
    (tmp / "broken.json").write_text('{"version": 1, "block_number": ')
    (tmp / "binary.toml").write_bytes(b"\x00\xff\xfe garbage \x89PNG")
    snapshot_text = snap.read_text() if snap.exists() else None
    assert snapshot_text is not None
    data = json.loads(snapshot_text)
    _absurd(data)
    absurd.write_text(json.dumps(data))
    return [
        ("run: missing config", ["run", "--config", str(tmp / "nope.toml")], {}, None),
        ("run: not TOML", ["run", "--config", config("not-toml", "chain = [[[\n")], {}, None),
        ("run: binary file", ["run", "--config", str(tmp / "binary.toml")], {}, None),
        ("run: unknown setting", ["run", "--config", variant("unknown", safety={"yolo": True})], {}, None),
        ("run: bad address", ["run", "--config", variant("addr", contracts={"pool": "0x1234"})], {}, None),
        ("run: bad URL", ["run", "--config", variant("url", chain={"rpc_urls": ["ftp://x"]})], {}, None),
        ("run: negative poll", ["run", "--config", variant("poll", schedule={"poll_seconds": -1})], {}, None),
        ("run: wrong chain id", ["run", "--config", variant("chainid", chain={"chain_id": 1})], {}, None),
        ("run: metrics port in use", ["run", "--config", good, "--metrics-port", str(busy_port)], {}, None),
        ("run: short key", ["run", "--config", variant("key", signer={"key": "0x1234"})], {}, None),
        ("run: non-hex key", ["run", "--config", variant("hexkey", signer={"key": "zz" * 32})], {}, None),
        ("run: env override not a number", ["run", "--config", good], {"KEEPER_CHAIN__CHAIN_ID": "abc"}, None),
        ("run: --metrics-port abc", ["run", "--config", good, "--metrics-port", "abc"], {}, None),
        ("run: no arguments", ["run"], {}, None),
        ("plan: not JSON", ["plan", "--snapshot", str(tmp / "broken.json")], {}, None),
        ("plan: a JSON list", ["plan", "--snapshot", str(tmp / "list.json")], {}, None),
        ("plan: empty stdin", ["plan", "--snapshot", "-"], {}, ""),
        ("plan: absurd values", ["plan", "--snapshot", str(absurd)], {}, None),
        ("plan: missing file", ["plan", "--snapshot", str(tmp / "none.json")], {}, None),
        ("status: bad config", ["status", "--config", config("status", "[chain]\nchain_id = 0\n")], {}, None),
        ("status: --block -5", ["status", "--config", good, "--block", "x"], {}, None),
        ("check-config: unknown setting", ["check-config", "--config", variant("cc", gas={"max_fee": 1})], {}, None),
        ("check-config: wrong chain id", ["check-config", "--config", variant("cc2", chain={"chain_id": 5})], {}, None),
        ("unknown command", ["rebalance-now"], {}, None),
    ]


def _absurd(data: dict[str, Any]) -> None:
    """Values no chain would produce: 2^300 prices, negative balances, a price of zero, a future timestamp."""

    def walk(node: Any, depth: int = 0) -> Any:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    if "price" in key:
                        node[key] = 2**300
                    elif "balance" in key or "supply" in key:
                        node[key] = -(10**40)
                    elif "timestamp" in key or "updated" in key:
                        node[key] = 2**64
                else:
                    walk(value, depth + 1)
        elif isinstance(node, list):
            for item in node:
                walk(item, depth + 1)
        return node

    walk(data)


def _run(argv: list[str], env: dict[str, str], stdin: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keeper.cli", *argv],
        env={**os.environ, **CHILD_ENV, **env},
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


FAST_CASES = ("run: not TOML", "run: bad address", "run: short key", "plan: absurd values", "status: bad config",
              "check-config: wrong chain id")


def test_malformed_inputs_fast_subset(world: World, tmp_path: Path, record: Any) -> None:
    run_cli_abuse(world, tmp_path, record, FAST_CASES)


@pytest.mark.slow
def test_malformed_cli_config_and_snapshot_exit_2_without_traceback_or_tx(
    world: World, tmp_path: Path, record: Any
) -> None:
    run_cli_abuse(world, tmp_path, record, None)


def run_cli_abuse(world: World, tmp_path: Path, record: Any, only: tuple[str, ...] | None) -> None:
    """Each output is scanned for the key by the session's secret scan (subprocess outputs are captured)."""
    from keeper.chain.reader import Addresses, SnapshotReader

    d = world.deployment
    reader = SnapshotReader(
        world.w3,
        Addresses(d.vault_manager, d.multicall, d.gmx_vault, d.glp_manager, d.reward_router, d.pool, d.glp),
        KEEPER,
    )
    (tmp_path / "snapshot.json").write_text(json.dumps(reader.read().to_json_dict()))
    nonce = world.keeper_nonce()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        cases = [c for c in _cases(world, tmp_path, busy.getsockname()[1]) if only is None or c[0] in only]
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda c: _run(c[1], c[2], c[3]), cases))
    bad = []
    for (name, _argv, _env, _stdin), result in zip(cases, results, strict=True):
        output = result.stdout + result.stderr
        if result.returncode != 2 or "Traceback" in output or not result.stderr.strip():
            bad.append(f"{name}: exit {result.returncode}: {output.strip()[-300:]}")
    sent = world.keeper_nonce("pending") - nonce
    observed = f"{len(cases) - len(bad)}/{len(cases)} exit 2 with one message and no traceback; {sent} tx sent"
    if bad:
        observed += "; failing: " + " | ".join(bad)
    what = "malformed config (TOML, types, addresses, URLs, keys, env), snapshots and arguments"
    record("abuse.cli_inputs" + (".subset" if only else ""), what,
           f"{len(cases)} invocations of keeper run/plan/status/check-config",
           "exit 2, no traceback, no transaction", observed, "pass" if not bad and sent == 0 else "finding")
    assert sent == 0
    assert not bad, "\n".join(bad)


def _app(world: World, tmp: Path, **sections: Any) -> Any:
    from keeper.config import load_config
    from keeper.daemon.app import KeeperApp

    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "app.toml"
    path.write_text(render_toml(keeper_config(world.anvil, world.deployment, tmp / "app-state", **sections)))
    return KeeperApp(load_config(path), holder="abuse-test")


def _bad_order(world: World, tmp: Path, how: str) -> tuple[Any, bytes]:
    """A real plan from the chain's current state, netted, then tampered with."""
    from keeper.decide import decide
    from keeper.snapshot import Memory

    app = _app(world, tmp)
    from decimal import Decimal

    world.step(60, WETH=Decimal(4000))  # fresh feeds; ETH +33%: every vault drifts (the seed is the keeper's own fit)
    block = int(str(rpc(world.url, "eth_blockNumber")), 16)
    snap = replace(app.read(block), memory=Memory())
    from keeper.daemon.app import rules_by_vault

    app.rules = rules_by_vault(app.cfg, [b.vault_id for b in snap.books])
    decision = decide(snap, app.rules, snap.memory)
    assert decision.plan is not None, "ETH +33% should make every vault drift"
    net = app.build_order(snap, decision.plan)
    order = net.order
    if how == "conservation":
        first = order.deltas[0]
        tampered = replace(first, cash=tuple(c + (10**6 if i == 0 else 0) for i, c in enumerate(first.cash)))
        order = replace(order, deltas=(tampered, *order.deltas[1:]))
    else:  # slippage: a mint leg's minimum GLP out halved, the vaults' shares halved with it (conserved)
        mint = next(leg for leg in order.glp if leg.glp > 0)
        a, target = mint.asset, mint.glp // 2
        deltas = [replace(dv, glp=tuple(g // 2 if i == a else g for i, g in enumerate(dv.glp))) for dv in order.deltas]
        rest = target - sum(dv.glp[a] for dv in deltas)
        k = next(j for j, dv in enumerate(deltas) if dv.glp[a])
        deltas[k] = replace(deltas[k], glp=tuple(g + rest if i == a else g for i, g in enumerate(deltas[k].glp)))
        legs = tuple(replace(leg, glp=target) if leg is mint else leg for leg in order.glp)
        order = replace(order, glp=legs, deltas=tuple(deltas))
    data = app.calldata(replace(net, order=order))
    app.store.close()
    return app, data


@pytest.mark.parametrize("how", ["conservation", "slippage"])
def test_bad_order_is_stopped_by_simulation_and_by_the_contract(
    how: str, world: World, tmp_path: Path, record: Any
) -> None:
    from keeper.execute.chain import connect
    from keeper.execute.pipeline import Pipeline, PipelineConfig
    from keeper.execute.revert import ErrorDecoder
    from keeper.execute.signer import RawKeySigner
    from keeper.store import Intent, State, open_store

    app, data = _bad_order(world, tmp_path, how)
    vm = world.deployment.vault_manager
    nonce = world.keeper_nonce()
    store = open_store(tmp_path / "bad.sqlite3")
    try:
        signer = RawKeySigner.from_secret(DEV_KEYS[1], "test")
        chain = connect([world.url], 31337, timeout=5.0)
        pipeline = Pipeline(store, chain, signer, PipelineConfig(chain_id=31337, confirmations=1))
        intent = pipeline.submit(Intent(f"bad-{how}", to=vm, data=data))
        pipeline.tick()
        final = store.get(intent.id)
        simulated = pipeline.last_revert.get(intent.id)
    finally:
        store.close()
    assert final.state is State.FAILED and simulated is not None, final
    assert world.keeper_nonce("pending") == nonce, "the simulation gate let it through"
    # forced: the raw transaction straight from the keeper's (unlocked) account, gas set by hand
    tx_hash = rpc(world.url, "eth_sendTransaction",
                  [{"from": KEEPER, "to": vm, "data": "0x" + data.hex(), "gas": hex(3_000_000)}])
    receipt = rpc(world.url, "eth_getTransactionReceipt", [tx_hash])
    if receipt is None:
        world.mine()
        receipt = rpc(world.url, "eth_getTransactionReceipt", [tx_hash])
    assert isinstance(receipt, dict) and int(str(receipt["status"]), 16) == 0, "the contract accepted a bad order"
    block = int(str(receipt["blockNumber"]), 16)
    try:
        rpc(world.url, "eth_call", [{"from": KEEPER, "to": vm, "data": "0x" + data.hex()}, hex(block - 1)])
        error = "no revert on replay"
    except Exception as exc:  # the node's error carries the revert data
        text = str(exc)
        start = text.find("0x", text.find("data"))
        raw = text[start:].split("'", maxsplit=1)[0].split('"', maxsplit=1)[0] if start >= 0 else ""
        error = ErrorDecoder.from_abi_dir().decode(bytes.fromhex(raw[2:]) if raw else b"").name
    expected = {"conservation": {"ConservationViolated"}, "slippage": {"BoundTooLoose", "FillOutsideBound"}}[how]
    observed = f"simulation: {simulated.name}, no tx; forced on chain: status 0, decoded {error}"
    record(f"abuse.order.{how}",
           {"conservation": "rebalance order with one vault's cash delta +1e6 (Σ vaults ≠ legs)",
            "slippage": "rebalance order whose GLP mint leg minimum is halved (vault shares halved with it)"}[how],
           "once via the pipeline, once forced raw from the keeper account",
           "stopped by simulation; if forced, reverted by the contract with a decoded custom error",
           observed, "pass" if simulated.name in expected and error in expected else "finding")
    assert simulated.name in expected and error in expected, observed
    del app


def test_allow_list_refuses_other_contracts_and_selectors(world: World, tmp_path: Path, record: Any) -> None:
    app = _app(world, tmp_path)
    vm = world.deployment.vault_manager
    rebalance = next(iter(s for s in app._selectors))
    transfer = bytes.fromhex("a9059cbb") + bytes(64)
    checks = {
        "VaultManager keeper selector": app._allowed(vm, bytes.fromhex(rebalance) + bytes(32)),
        "VaultManager upper-case address": app._allowed(vm.upper().replace("0X", "0x"), bytes.fromhex(rebalance)),
        "ERC20 transfer on the VaultManager": app._allowed(vm, transfer),
        "owner-only setKeeper on the VaultManager": app._allowed(vm, app_selector("setKeeper(address)")),
        "keeper selector on another contract": app._allowed(world.deployment.pool, bytes.fromhex(rebalance)),
        "empty calldata": app._allowed(vm, b""),
    }
    app.store.close()
    restricted = _app(world, tmp_path / "r", safety={"allowed_selectors": ["0xdeadbeef"]})
    configured = restricted._allowed(vm, bytes.fromhex(rebalance)), restricted._allowed(vm, bytes.fromhex("deadbeef"))
    restricted.store.close()
    expected = {"VaultManager keeper selector": True, "VaultManager upper-case address": True}
    wrong = [k for k, v in checks.items() if v != expected.get(k, False)]
    verdicts = ["allowed" if c else "refused" for c in configured]
    observed = (f"{len(checks) - len(wrong)}/{len(checks)} decisions right; allowed_selectors=[0xdeadbeef] → "
                f"rebalance {verdicts[0]}, 0xdeadbeef {verdicts[1]}")
    record("abuse.allow_list", "transactions to another contract / with a non-keeper selector; a restricted list",
           f"{len(checks) + 2} checks of KeeperApp._allowed", "refused before signing", observed,
           "pass" if not wrong and configured == (False, True) else "finding")
    assert not wrong and configured == (False, True), observed


def app_selector(signature: str) -> bytes:
    from web3 import Web3

    return bytes(Web3.keccak(text=signature)[:4]) + bytes(32)


@pytest.mark.slow
def test_daemon_with_a_restricted_allow_list_sends_nothing(
    world: World, daemons: Any, tmp_path: Path, record: Any
) -> None:
    from decimal import Decimal

    from tests.faults.conftest import ready

    world.step(60, WETH=Decimal(4000))  # ETH +33%: a rebalance is due (the seed is the keeper's fit)
    nonce = world.keeper_nonce()
    d = daemons(keeper_config(world.anvil, world.deployment, tmp_path / "state",
                              safety={"allowed_selectors": ["0xdeadbeef"]})).start()
    ready(d, world)
    d.wait_until(lambda: d.value("keeper_rebalances_total", result="not_allowed") >= 1, "a refusal", 30,
                 between=world.mine)
    text = d.metrics()
    refused = metric(text, "keeper_rebalances_total", result="not_allowed")
    sent = world.keeper_nonce("pending") - nonce
    observed = f"{refused:.0f} plans refused by the allow-list, {sent} tx sent"
    record("abuse.allow_list.daemon", "safety.allowed_selectors = [0xdeadbeef] with a rebalance due",
           "every tick", "no transaction; refusal counted", observed, "pass" if sent == 0 else "finding")
    assert sent == 0 and refused >= 1
