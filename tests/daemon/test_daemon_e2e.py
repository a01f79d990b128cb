"""End to end: `keeper run` as a subprocess against the devnet while the test moves the market.

It must rebalance on its own for each trigger kind (delta drift, the 48h cycle with harvest, hedge
PnL settlement, health factor, net OI after 2h), serve metrics and health, and stop cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from keeper.config import render_toml
from keeper.devnet.anvil import free_port, rpc
from keeper.devnet.market import Market
from keeper.devnet.session import devnet_config

pytestmark = pytest.mark.anvil
HOUR = 3600


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


def samples(text: str, name: str, **labels: str) -> list[float]:
    """The values of exactly `name` whose labels include `labels`."""
    out = []
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if line.startswith("#") or head.split("{", 1)[0] != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            out.append(float(value))
    return out


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of exactly `name` whose labels include `labels`."""
    return sum(samples(text, name, **labels))


def one(text: str, name: str, **labels: str) -> float:
    """The single sample of `name` with `labels`: it must be exported (an absent series silences its alert)."""
    found = samples(text, name, **labels)
    assert len(found) == 1, (name, labels, found)
    return found[0]


@pytest.fixture
def daemon(anvil: Any, deployment: Any, chain: None, tmp_path: Path) -> Iterator[dict[str, Any]]:
    port = free_port()
    config = devnet_config(anvil, deployment)
    config["state_dir"] = str(tmp_path / "state")
    config["metrics"] = {"host": "127.0.0.1", "port": port}
    config["schedule"] = {"poll_seconds": 0.25, "in_flight_seconds": 0.25, "grace_seconds": 10}
    config["chain"] = {**config["chain"], "confirmations": 1}  # type: ignore[dict-item]
    path = tmp_path / "keeper.toml"
    path.write_text(render_toml(config))
    log = (tmp_path / "keeper.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "keeper.cli", "run", "--config", str(path)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        yield {"proc": proc, "url": f"http://127.0.0.1:{port}", "log": tmp_path / "keeper.log"}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_daemon_rebalances_on_every_trigger_and_stops_cleanly(
    daemon: dict[str, Any], anvil: Any, w3: Any, deployment: Any, c: Any
) -> None:
    market = Market(w3, deployment)
    vm = c("VaultManager")
    url = daemon["url"]
    prices = {"USDC": Decimal(1), "WETH": Decimal(3000), "WBTC": Decimal(60000)}

    def wait(cond: Callable[[], bool], what: str, timeout: float = 45) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if daemon["proc"].poll() is not None:
                pytest.fail(f"daemon exited early:\n{daemon['log'].read_text()[-3000:]}")
            if cond():
                return
            rpc(anvil.url, "evm_mine")  # blocks keep coming, as on a live chain
            time.sleep(0.3)
        pytest.fail(f"timed out waiting for {what}:\n{daemon['log'].read_text()[-4000:]}")

    def rebalances() -> int:
        count: int = vm.functions.rebalanceCount().call()
        return count

    def step(seconds: int = 0, **moves: Decimal) -> None:
        """Advance chain time and refresh every feed (a live feed updates within its heartbeat)."""
        if seconds:
            market.advance(seconds)
        prices.update(moves)
        market.set_prices(prices)

    def quiet(seconds: float = 3.0) -> int:
        """Wait until nothing is pending and no rebalance happened for `seconds` (follow-ups included)."""
        last, since = rebalances(), time.monotonic()

        def still() -> bool:
            nonlocal last, since
            now = rebalances()
            if now != last or metric(get(url + "/metrics")[1], "keeper_pending_transactions") != 0:
                last, since = now, time.monotonic()
            return time.monotonic() - since >= seconds

        wait(still, "quiet")
        return rebalances()

    def settled_after(before: int, what: str) -> int:
        wait(lambda: rebalances() > before, what)
        return quiet()

    wait(lambda: get(url + "/healthz")[0] == 200, "liveness")
    wait(lambda: get(url + "/readyz")[0] == 200, "readiness")
    assert json.loads(get(url + "/readyz")[1])["checks"]["leader"]["ok"] is True

    # 1. delta drift: ETH +12% moves every vault's exposure beyond 5%
    n = quiet()  # the first ticks fit the seeded books to the keeper's own model
    step(60, WETH=Decimal(3360))
    n = settled_after(n, "a delta-drift rebalance")

    # 2. the 48h recurring cycle (chain time, from lastCycleAt): harvest → hedge → profit
    last_cycle = vm.functions.lastCycleAt().call()
    harvested_before = vm.functions.lastHarvestAt().call()
    step(48 * HOUR + 60)
    n = settled_after(n, "the recurring cycle")
    assert vm.functions.lastCycleAt().call() > last_cycle
    assert vm.functions.lastHarvestAt().call() > harvested_before

    # 3. hedge PnL: prices fall 20% → the shorts (~30% of equity) gain > 5% of equity → profit settlement
    profit_before = vm.functions.lastProfitAt().call()
    step(60, WETH=Decimal(2690), WBTC=Decimal(48000))
    n = settled_after(n, "a profit rebalance")
    assert vm.functions.lastProfitAt().call() > profit_before

    # 4. health factor: ETH and BTC +45% at once → HF below 1.2 → urgent hedge + margin
    step(60, WETH=Decimal(3900), WBTC=Decimal(69600))
    n = settled_after(n, "a health-factor rebalance")
    hf = c("Pool").functions.getUserAccountData(deployment.vault_manager).call()[5]
    assert hf >= 149 * 10**16, hf  # back at the 1.5 target (within rounding)

    # 5. net OI: traders open 100 ETH of longs: net OI −226 → −126 ETH (a 44% OI drift) while the
    #    exposure per GLP moves only 1% (no delta-drift trigger); the OI drift must persist 2h to fire
    market.set_open_interest("WETH", Decimal(3100), Decimal(10_000_000), Decimal(3100))
    step(60)
    # the timer starts when the keeper first sees the drift: wait for that before compressing time
    wait(lambda: metric(get(url + "/metrics")[1], "keeper_oi_drift_ratio", asset="WETH") >= 0.05, "OI drift seen")
    assert rebalances() == n  # not yet: the drift has not lasted 2h
    step(2 * HOUR + 120)
    n = settled_after(n, "a net-OI rebalance")

    text = get(url + "/metrics")[1]
    for trigger in ("delta_drift", "cycle", "hedge_pnl", "health_factor", "net_oi"):
        assert metric(text, "keeper_triggers_fired_total", trigger=trigger) >= 1, trigger
    assert metric(text, "keeper_rebalances_total", result="success") >= 5
    assert metric(text, "keeper_gas_spent_wei_total") > 0
    assert one(text, "keeper_leader") == 1 and one(text, "keeper_ready") == 1
    # the series the alert rules read, with sane values
    assert one(text, "keeper_oldest_pending_transaction_age_seconds") == 0  # quiet: nothing pending
    assert one(text, "keeper_pending_transactions") == 0
    assert abs(one(text, "keeper_heartbeat_timestamp_seconds") - time.time()) < 60
    last_cycle = vm.functions.lastCycleAt().call()
    for vault in ("0", "1", "2"):
        assert one(text, "keeper_last_successful_rebalance_timestamp_seconds", vault=vault) >= last_cycle
        assert one(text, "keeper_rebalance_deadline_seconds", vault=vault) == 48 * HOUR
    for asset in ("USDC", "WETH", "WBTC"):
        assert one(text, "keeper_oracle_guard_tripped", asset=asset) == 0  # fresh, agreeing feeds
    assert one(text, "keeper_rpc_requests_total", endpoint="rpc0") > 0
    assert one(text, "keeper_signer_balance_wei") > 0
    for vault in ("0", "1", "2"):
        assert one(text, "keeper_fee_ledger_cost_usd", vault=vault) > 0

    daemon["proc"].send_signal(signal.SIGTERM)
    assert daemon["proc"].wait(timeout=20) == 0
    log = daemon["log"].read_text()
    assert "Traceback" not in log
    # after the restart-equivalent (a new process reading the journal): fees, gas and the fee ledger
    config = str(daemon["log"].parent / "keeper.toml")
    fees = subprocess.run([sys.executable, "-m", "keeper.cli", "fees", "--config", config, "--format", "json"],
                          capture_output=True, text=True, timeout=60)
    assert fees.returncode == 0, fees.stderr
    accounted = json.loads(fees.stdout)
    assert len(accounted["rebalances"]) >= 5
    for record in accounted["rebalances"]:  # shares sum exactly to what was paid
        assert sum(v["gas_wei"] for v in record["vaults"]) + record.get("unattributed_gas_wei", 0) == record["gas_wei"]
    pools = {p["pool_id"]: p for p in accounted["ledger"]["ledger"]["pools"]}
    assert set(pools) == {"vault:0", "vault:1", "vault:2"}  # one fee ledger per vault, depositors as holders
    for name, pool in pools.items():
        assert int(pool["total_cost"]) > 0
        charged = sum(int(h["charged"]) for h in pool["holders"])
        assert charged <= int(pool["total_cost"])  # never overcharged; the rest is carried, not lost
        owed = accounted["ledger"]["statement"][name]
        assert sum(x["charged"] + x["owed"] for x in owed.values()) == int(pool["total_cost"])
    table = subprocess.run([sys.executable, "-m", "keeper.cli", "fees", "--config", config],
                           capture_output=True, text=True, timeout=60)
    assert table.returncode == 0, table.stderr
    for name in pools:  # the table names each vault's ledger and its holders with charged and owed amounts
        assert f"fee ledger, {name}: " in table.stdout
    assert re.search(r"^  holder \S+: charged [0-9,.]+ USD, owed [0-9,.]+ USD", table.stdout, re.M), table.stdout
    assert "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"[2:] not in log  # the signer key
