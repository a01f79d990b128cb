"""`make demo`: the real `keeper run` daemon on the embedded devnet while a market simulator drives it.

Owns the demo's orchestration: its options (validated: a bad value is an InputError naming the flag, so
the CLI exits 2), devnet up, daemon started as a subprocess (the product, unchanged), a market path (GBM
with configurable volatility and a scripted crash and rally, trader OI swings, deposits and withdrawals,
rewards accruing as compressed time passes), a live table, the summary and the report folder (raw CSV,
PNG plots, summary.json). Everything it starts it stops, by pid, also on Ctrl-C. It reads the daemon only
from outside: its /metrics and its journal (intents and their outcomes, the attribution records). A test
and demo tool: the keeper's decision path never imports it.
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any, TextIO

from web3 import Web3

from keeper.chain.reader import Addresses, SnapshotReader
from keeper.config import render_toml
from keeper.devnet.anvil import free_port, rpc
from keeper.devnet.lyf import PRICE_USD, LyfDeployment, price_step_calls
from keeper.devnet.market import Market, Script, Shock, gbm_paths, oi_swing
from keeper.devnet.session import devnet_config, lyf_position_config, start_devnet
from keeper.errors import InputError
from keeper.snapshot import MAX_UINT256, Snapshot
from keeper.store import State, Store, open_store

HOUR = 3600
DAY = 24 * HOUR
LYF_NAME = "avax-usdc"
START = {"USDC": Decimal(1), "WETH": Decimal(3000), "WBTC": Decimal(60000)}
HEDGED = ("WETH", "WBTC")  # the assets the market moves (USDC stays at 1)
VOLATILITY = {"WETH": Decimal("0.8"), "WBTC": Decimal("0.6")}  # annual
CRASH = {"WETH": Decimal("0.22"), "WBTC": Decimal("0.18")}  # fraction of the price lost at the crash
RALLY = {"WETH": Decimal("0.30"), "WBTC": Decimal("0.25")}  # fraction gained at the rally
UNMINED = frozenset({State.PLANNED, State.SIMULATED, State.SIGNED, State.BROADCAST})
QUIET_SECONDS = 0.45  # > the daemon's poll (0.2 s) + one tick (< 0.2 s, else it logs an overrun)
WIDTH = 120  # the live table fits this many columns
# the daemon's journal keys (keeper.daemon.app.PENDING, keeper.daemon.lyf_job.PENDING, app.ATTRIBUTION)
VAULT_PENDING, LYF_PENDING, ATTRIBUTION = "pending", "lyf-pending", "attribution"
REQUIRED_TRIGGERS = ("cycle", "delta_drift", "net_oi", "health_factor", "hedge_pnl", "band")


@dataclass(frozen=True)
class DemoOptions:
    days: int = 8
    step_seconds: int = 2 * HOUR  # simulated time per step
    seed: int = 11
    out: Path = Path(".keeper/demo")
    step_wall_seconds: float = 0.6  # real time the daemon gets per step (several blocks); wall time, not money
    live: bool = True
    volatility: Mapping[str, Decimal] = field(default_factory=lambda: dict(VOLATILITY))
    crash_day: Decimal | None = None  # None: 3/8 of the run (day 3 of the default 8)
    crash: Mapping[str, Decimal] = field(default_factory=lambda: dict(CRASH))
    rally_day: Decimal | None = None  # None: 5/8 of the run
    rally: Mapping[str, Decimal] = field(default_factory=lambda: dict(RALLY))

    @property
    def steps(self) -> int:
        return self.days * DAY // self.step_seconds

    @property
    def steps_per_day(self) -> int:
        return DAY // self.step_seconds

    def shock_step(self, day: Decimal | None, eighths: int) -> int:
        """The step a shock lands on: `day` (or eighths/8 of the run) rounded half-even to a step, ≥ 1."""
        at = day if day is not None else Decimal(self.days * eighths) / 8
        step = (at * DAY / self.step_seconds).to_integral_value(ROUND_HALF_EVEN)
        return max(1, int(step))

    def script(self) -> Script:
        shocks: list[Shock] = []
        crash_at, rally_at = self.shock_step(self.crash_day, 3), self.shock_step(self.rally_day, 5)
        for symbol in HEDGED:
            if self.crash.get(symbol):
                shocks.append(Shock(crash_at, symbol, 1 - self.crash[symbol]))
            if self.rally.get(symbol):
                shocks.append(Shock(rally_at, symbol, 1 + self.rally[symbol]))
        return Script(seed=self.seed, step_seconds=self.step_seconds, volatility=dict(self.volatility),
                      shocks=tuple(shocks))


# --- options from the command line ---------------------------------------------------------------------------
def _decimal(flag: str, text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InputError(flag, f"not a number: {text!r:.40}") from None
    if not value.is_finite():
        raise InputError(flag, f"not a finite number: {text!r:.40}")
    return value


def _int(flag: str, text: str, lo: int, hi: int) -> int:
    value = _decimal(flag, text)
    if value != value.to_integral_value():
        raise InputError(flag, f"not a whole number: {text!r:.40}")
    if not lo <= value <= hi:
        raise InputError(flag, f"{value} out of range {lo} ≤ value ≤ {hi}")
    return int(value)


def _in_range(flag: str, value: Decimal, lo: Decimal, hi: Decimal, *, hi_open: bool = False) -> Decimal:
    if value < lo or value > hi or (hi_open and value == hi):
        raise InputError(flag, f"{value} out of range {lo} ≤ value {'<' if hi_open else '≤'} {hi}")
    return value


def _per_asset(flag: str, text: str | None, default: Mapping[str, Decimal], hi: Decimal, *,
               hi_open: bool = False) -> dict[str, Decimal]:
    """Percent → fraction: "50" sets every asset, "WETH=80,WBTC=60" the named ones (the others keep default)."""
    out = dict(default)
    if text is None:
        return out
    if "=" not in text:
        value = _in_range(flag, _decimal(flag, text), Decimal(0), hi, hi_open=hi_open) / 100
        return {s: value for s in HEDGED}
    for part in text.split(","):
        symbol, sep, number = part.partition("=")
        symbol = symbol.strip().upper()
        if not sep or symbol not in HEDGED:
            raise InputError(flag, f"expected ASSET=PCT with ASSET one of {', '.join(HEDGED)}, got {part!r:.40}")
        out[symbol] = _in_range(flag, _decimal(flag, number), Decimal(0), hi, hi_open=hi_open) / 100
    return out


def options_from_args(args: argparse.Namespace) -> DemoOptions:
    """`keeper demo`'s flags (keeper/cli.py defines them as text; None = the default) → checked options."""
    d = DemoOptions()

    def given(value: str | None, default: object) -> str:
        return str(default) if value is None else value

    days = _int("--days", given(args.days, d.days), 1, 365)
    step_hours = _int("--step-hours", given(args.step_hours, d.step_seconds // HOUR), 1, 24)
    if 24 % step_hours:
        raise InputError("--step-hours", f"{step_hours} does not divide a day (use 1, 2, 3, 4, 6, 8, 12 or 24)")
    wall = _in_range("--step-wall-seconds", _decimal("--step-wall-seconds",
                                                     given(args.step_wall_seconds, d.step_wall_seconds)),
                     Decimal("0.05"), Decimal(60))

    def day_of(flag: str, value: str | None) -> Decimal | None:
        if value is None:
            return None
        day = _decimal(flag, value)
        if not 0 < day <= days:
            raise InputError(flag, f"{day} is outside the run (0 < day ≤ --days {days})")
        return day

    return DemoOptions(
        days=days, step_seconds=step_hours * HOUR, seed=_int("--seed", given(args.seed, d.seed), 0, 2**63 - 1),
        out=Path(args.state_dir), step_wall_seconds=float(wall), live=not args.no_live,
        volatility=_per_asset("--vol", args.vol, VOLATILITY, Decimal(500)),
        crash_day=day_of("--crash-day", args.crash_day),
        crash=_per_asset("--crash-pct", args.crash_pct, CRASH, Decimal(100), hi_open=True),
        rally_day=day_of("--rally-day", args.rally_day),
        rally=_per_asset("--rally-pct", args.rally_pct, RALLY, Decimal(1000)),
    )


# --- what the demo observes ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VaultRow:
    """One vault after a step: its book (GLP, hedge = debt per asset, collateral, buffer) and its measures."""

    equity: Decimal  # USD
    glp: Decimal  # GLP units
    hedge: tuple[Decimal, ...]  # debt per asset, whole tokens (the short legs)
    collateral_usd: Decimal
    buffer_usd: Decimal  # cash in the denomination
    drift: Decimal  # max |hedge / target − 1| over the assets
    hedge_pnl: Decimal  # hedge PnL since settlement / equity
    fees_usd: Decimal  # cumulative GMX fees, at the oracle when each rebalance was mined (journal, exact)
    gas_eth: Decimal  # cumulative gas (journal, exact)
    hf: Decimal  # the vault's own health factor after the step (0 = no debt)
    hf_before: Decimal  # ... read right after the market's transactions (see Row.hf_before)


@dataclass
class Row:
    step: int
    time: int
    block: int
    prices: dict[str, Decimal]
    # the account's, read right after the market's transactions (0 = no debt); a sample: the keeper ticks every
    # block, so it may already have answered part of the move
    hf_before: Decimal
    hf: Decimal  # the account's after the step (the keeper's answer mined)
    vaults: dict[int, VaultRow]
    rebalances: int  # VaultManager.rebalanceCount: mined, successful
    in_flight: int  # intents not final yet (keeper_pending_transactions)
    last_action: str
    avax: Decimal = Decimal(0)  # the LYF position's volatile price (USD)
    lyf_leverage: Decimal = Decimal(0)
    lyf_delta: Decimal = Decimal(0)  # (LP volatile − volatile debt) / volatile debt
    lyf_rebalances: int = 0


@dataclass
class Scrape:
    url: str
    text: str = ""

    def refresh(self) -> None:
        try:
            with urllib.request.urlopen(self.url + "/metrics", timeout=3) as response:  # noqa: S310 - loopback
                self.text = response.read().decode()
        except OSError:
            pass

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        out = []
        for line in self.text.splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            labels: dict[str, str] = {}
            if "{" in head:
                if head.split("{", 1)[0] != name:
                    continue
                for part in head.split("{", 1)[1].rstrip("}").split(","):
                    if "=" in part:
                        key, val = part.split("=", 1)
                        labels[key] = val.strip('"')
            elif head != name:
                continue
            out.append((labels, float(value)))
        return out

    def total(self, name: str, **want: str) -> float:
        return sum(v for labels, v in self.samples(name) if all(labels.get(k) == w for k, w in want.items()))

    def by(self, name: str, label: str) -> dict[str, int]:
        """A counter's samples summed per value of `label` (display counts)."""
        out: dict[str, int] = {}
        for labels, value in self.samples(name):
            key = labels.get(label, "-")
            out[key] = out.get(key, 0) + int(value)
        return out


def plan_triggers(plan: Mapping[str, Any]) -> set[str]:
    """The trigger kinds a plan (its journal JSON) answered. A reason is `TriggerResult.reason()`: "name[scope]
    FIRED: ..."; a vault-scoped one ("vault:<id>" or "vault:<id>:<asset>") counts only when that vault is in
    the plan (a halted or deferred vault's trigger fires without the vault trading)."""
    in_plan = {int(v["vault_id"]) for v in plan["vaults"]}
    kinds = set()
    for reason in plan["reasons"]:
        name, _, rest = reason.partition("[")
        scope = rest.split("]", 1)[0].split(":")
        if scope[0] == "vault" and len(scope) > 1 and scope[1].isdigit() and int(scope[1]) not in in_plan:
            continue
        kinds.add(name.strip())
    return kinds


@dataclass(frozen=True)
class JournalTally:
    """What the daemon's journal says happened: mined (successful) rebalances by trigger kind (each kind
    once per rebalance), intent outcomes, and the exact fee and gas attribution per vault."""

    vault_triggers: dict[str, int]
    vault_rebalances: int
    lyf_triggers: dict[str, int]
    lyf_rebalances: int
    outcomes: dict[str, int]  # success, reverted, would revert, cancelled, ...
    fee_usd30: dict[int, int]  # per vault, at the oracle when mined
    gas_wei: dict[int, int]  # per vault
    unattributed_gas_wei: int
    reverted_errors: dict[str, int] = field(default_factory=dict)  # mined with status 0, by the replayed error
    refused_errors: dict[str, int] = field(default_factory=dict)  # refused by the simulation gate, by error


def _error_name(error: str, prefix: str) -> str:
    """`would revert: BoundTooLoose(asset=1, ...)` → `BoundTooLoose` (the journal's error text)."""
    return error.removeprefix(prefix).strip().split("(", 1)[0] or "?"


def tally(store: Store, sender: str) -> JournalTally:
    vault_triggers: Counter[str] = Counter()
    lyf_triggers: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    reverted: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    vault_n = lyf_n = 0
    for record in store.all_intents(sender):
        if record.outcome == "reverted":
            reverted[_error_name(record.error or "unknown", "reverted on chain:")] += 1
        elif not record.outcome and record.error and record.error.startswith("would revert"):
            refused[_error_name(record.error, "would revert:")] += 1
        if record.outcome == "success":
            outcomes["success"] += 1
        elif record.state is State.CANCELLED:
            outcomes["cancelled"] += 1
        elif record.outcome:
            outcomes[record.outcome] += 1
        elif record.error and record.error.startswith("would revert"):
            outcomes["would revert"] += 1
        else:
            outcomes[record.state.value] += 1
        if record.outcome != "success":
            continue
        vault = store.get_state(f"{VAULT_PENDING}:{record.id}")
        if vault is not None:
            vault_n += 1
            vault_triggers.update(plan_triggers(json.loads(vault)["plan"]))
        lyf = store.get_state(f"{LYF_PENDING}:{record.id}")
        if lyf is not None:
            lyf_n += 1
            lyf_triggers.update(set(json.loads(lyf).get("triggers", [])))
    fees, gas, unattributed = costs(store)
    return JournalTally(dict(vault_triggers), vault_n, dict(lyf_triggers), lyf_n, dict(outcomes), fees, gas,
                        unattributed, dict(reverted), dict(refused))


def costs(store: Store) -> tuple[dict[int, int], dict[int, int], int]:
    """Per vault GMX fees (USD × 1e30, at the oracle when mined) and gas (wei), and the gas attributed to no
    vault, summed over the journal's attribution records (one per accounted rebalance)."""
    fees: Counter[int] = Counter()
    gas: Counter[int] = Counter()
    unattributed = 0
    for _, text in store.records(ATTRIBUTION):
        document = json.loads(text)
        unattributed += int(document.get("unattributed_gas_wei", 0))
        for v in document["vaults"]:
            fees[int(v["vault_id"])] += int(v["fee_usd30"])
            gas[int(v["vault_id"])] += int(v["gas_wei"])
    return dict(fees), dict(gas), unattributed


@dataclass
class Demo:
    options: DemoOptions
    rows: list[Row] = field(default_factory=list)
    say: Callable[[str], None] = print
    lyf: LyfDeployment | None = None
    names: dict[int, str] = field(default_factory=dict)
    symbols: tuple[str, ...] = ()
    journal: JournalTally | None = None
    submitted: dict[str, int] = field(default_factory=dict)  # keeper_triggers_fired_total (at submission)
    results: dict[str, int] = field(default_factory=dict)  # keeper_rebalances_total by result
    lyf_results: dict[str, int] = field(default_factory=dict)
    failed_gas_wei: float = 0.0
    pids: dict[str, int] = field(default_factory=dict)
    daemon_exit: int | None = None
    started_at: float = field(default_factory=time.monotonic)
    wall_seconds: float = 0.0

    def run(self) -> int:
        o = self.options
        o.out.mkdir(parents=True, exist_ok=True)
        config_path = o.out / "devnet.toml"
        interrupted = False
        with start_devnet(port=None, block_time=None, config_out=config_path, with_lyf=True) as dev:
            self.pids["anvil"] = dev.anvil.pid
            w3 = Web3(Web3.HTTPProvider(dev.anvil.url, request_kwargs={"timeout": 60}))
            d = dev.deployment
            self.names = dev.vault_names()
            port = free_port()
            config = devnet_config(dev.anvil, d)
            config["state_dir"] = str(o.out / "state")
            config["metrics"] = {"host": "127.0.0.1", "port": port}
            config["schedule"] = {"poll_seconds": 0.2, "in_flight_seconds": 0.2}
            config["chain"] = {**config["chain"], "confirmations": 1}  # type: ignore[dict-item]
            # the BTC vault trades on volatility bands instead of the fixed 5% drift rule (both policies run)
            config["vaults"] = [{"id": 2, "name": "btc", "rules": {"drift_policy": "bands"}}]
            # and a leveraged-LP position (AVAX/USDC, 3×) beside the vaults, through the same pipeline
            assert dev.lyf is not None
            config["lyf"] = {"positions": [lyf_position_config(dev.lyf, LYF_NAME)]}
            config_path.write_text(render_toml(config))
            self.lyf = dev.lyf
            self.say(dev.describe())
            log_path = o.out / "keeper.log"
            journal_path = o.out / "state" / "journal.sqlite3"
            with log_path.open("w") as log:
                daemon = subprocess.Popen(
                    [sys.executable, "-m", "keeper.cli", "run", "--config", str(config_path)],
                    stdout=log, stderr=subprocess.STDOUT,
                )
                self.pids["daemon"] = daemon.pid
                self.say(f"\nkeeper run started (pid {daemon.pid}); metrics http://127.0.0.1:{port}/metrics; "
                         f"log {log_path}\n")
                scrape = Scrape(f"http://127.0.0.1:{port}")
                try:
                    self._wait_ready(scrape, daemon)
                    store = open_store(journal_path)
                    try:
                        self._drive(w3, d, scrape, dev.anvil.url, daemon=daemon, store=store)
                    finally:
                        store.close()
                except KeyboardInterrupt:
                    interrupted = True
                    self.say("\ninterrupted: stopping")
                finally:
                    if daemon.poll() is None:
                        daemon.send_signal(signal.SIGTERM)
                        try:
                            daemon.wait(timeout=30)
                        except subprocess.TimeoutExpired:
                            daemon.kill()
                            daemon.wait()
                self.daemon_exit = daemon.returncode
                self.say(f"keeper run stopped (exit {daemon.returncode})")
            if journal_path.exists():
                store = open_store(journal_path)
                try:
                    self.journal = tally(store, d.keeper)
                finally:
                    store.close()
        self.say("devnet stopped")
        self.wall_seconds = time.monotonic() - self.started_at
        report = self.report(o.out / "report")
        self.say(self.summary())
        self.say(f"\nreport written to {report}/ (rows.csv, summary.json and PNG plots)")
        return 130 if interrupted else 0

    # --- the market -------------------------------------------------------------------------------------------
    def _drive(self, w3: Web3, d: Any, scrape: Scrape, url: str, *, daemon: subprocess.Popen[bytes],
               store: Store) -> None:
        o = self.options
        steps, day = o.steps, o.steps_per_day
        path = gbm_paths(o.script(), START, steps)
        market = Market(w3, d)
        avax = Decimal(PRICE_USD)
        reader = SnapshotReader(
            w3, Addresses(d.vault_manager, d.multicall, d.gmx_vault, d.glp_manager, d.reward_router, d.pool, d.glp),
            d.keeper,
        )
        last_count = 0
        last_action = "-"
        live = o.live and sys.stdout.isatty()
        for step in range(1, steps + 1):
            if daemon.poll() is not None:
                raise RuntimeError(f"keeper run exited with {daemon.returncode}; see its log")
            # traders open and close longs: ±35% around the deployed 3,000 WETH reserved, from the deployed level
            eth_reserved = oi_swing(step + day // 2, 2 * day, Decimal(3000), Decimal("0.35"))
            deposit = withdraw = None
            if step % day == day // 2:  # a deposit a day, a withdrawal every other day
                user = d.users[step % 2]
                vault = (step // day) % 3
                deposit = (user, vault, [50_000 * 10**6, 20 * 10**18, 10**8][vault])
                if step % (2 * day) == day // 2 and market.shares(user, vault) > 0:
                    withdraw = (user, vault, market.shares(user, vault) // 20)
            lyf_calls: list[tuple[Any, str]] = []
            if self.lyf is not None:  # AVAX follows ETH's path with 1.5× its moves; the feed is refreshed every step
                factor = 1 + (path[step]["WETH"] / path[step - 1]["WETH"] - 1) * Decimal("1.5")
                avax *= factor
                lyf_calls, _swap = price_step_calls(w3, self.lyf, Fraction(factor))
            # the whole step in one block, the AVAX feed and the pool's arbitrage included: the keeper never trades
            # on half a step, and no keeper swap lands between the arbitrage's read and its swap (see Market.step)
            market.step(o.step_seconds, path[step], [("WETH", eth_reserved, Decimal(10_000_000), Decimal(3100))],
                        deposit=deposit, withdraw=withdraw, also=lyf_calls)
            before = reader.read()
            deadline = time.monotonic() + o.step_wall_seconds
            while time.monotonic() < deadline:
                rpc(url, "evm_mine")
                time.sleep(0.15)
            self._settle(scrape, url, store, d.keeper)
            snap = reader.read()
            count = snap.manager.rebalance_count
            if count > last_count:
                last_action = f"rebalance #{count} at step {step}"
                last_count = count
            row = self._row(step, snap, path[step], scrape, action=last_action, before=before, store=store)
            row.avax = avax
            self.rows.append(row)
            self._observe(scrape)
            self._show(row, live, steps, self._unmined(store, d.keeper))
        self._drain(scrape, url)
        self._observe(scrape)

    def _observe(self, scrape: Scrape) -> None:
        self.submitted = scrape.by("keeper_triggers_fired_total", "trigger")
        self.results = scrape.by("keeper_rebalances_total", "result")
        self.lyf_results = scrape.by("keeper_lyf_rebalances_total", "result")
        self.failed_gas_wei = scrape.total("keeper_failed_transaction_gas_wei_total")

    def _wait_ready(self, scrape: Scrape, daemon: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if daemon.poll() is not None:
                raise RuntimeError(f"keeper run exited with {daemon.returncode}; see its log")
            scrape.refresh()
            if scrape.total("keeper_leader") >= 1 and scrape.total("keeper_ticks_total") >= 1:
                return
            time.sleep(0.3)
        raise RuntimeError("keeper run did not lead and tick within 90 s")

    @staticmethod
    def _unmined(store: Store, sender: str) -> int:
        return sum(1 for r in store.in_flight(sender) if r.state in UNMINED)

    def _settle(self, scrape: Scrape, url: str, store: Store, sender: str, bound: float = 30.0) -> None:
        """Before the market moves again (bounded): the daemon has seen the newest block, nothing it planned is
        still unmined (anvil mines on arrival), and its tick count has stayed the same for longer than a tick
        lasts (`QUIET_SECONDS`). `keeper_head_block` is set when a tick STARTS and `keeper_ticks_total` counts
        when it ENDS: two equal samples 0.15 s apart used to pass while a tick was still deciding, and the
        step then landed between its snapshot and its transaction (the demo's on-chain reverts)."""
        deadline = time.monotonic() + bound
        quiet: tuple[float, float] | None = None  # (tick count, since when it is unchanged and caught up)
        while time.monotonic() < deadline:
            head = int(str(rpc(url, "eth_blockNumber")), 16)
            scrape.refresh()
            ticks = scrape.total("keeper_ticks_total")
            caught_up = scrape.total("keeper_head_block") >= head and self._unmined(store, sender) == 0
            now = time.monotonic()
            if not caught_up or quiet is None or quiet[0] != ticks:
                quiet = (ticks, now) if caught_up else None
            elif now - quiet[1] >= QUIET_SECONDS:
                return
            time.sleep(0.1)

    def _drain(self, scrape: Scrape, url: str, bound: float = 90.0) -> None:
        """After the last step: mine blocks (1 s of chain time each) until every intent is final and accounted,
        so the summary's fees and gas include the last rebalances (bounded)."""
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            scrape.refresh()
            if scrape.total("keeper_pending_transactions") == 0:
                return
            rpc(url, "evm_mine")
            time.sleep(0.1)
        self.say("note: intents still in flight at the end (their fees are not in the summary)")

    def _row(self, step: int, snap: Snapshot, prices: dict[str, Decimal], scrape: Scrape, *, action: str,
             before: Snapshot, store: Store) -> Row:
        self.symbols = tuple(a.symbol for a in snap.assets)
        drift: dict[int, Decimal] = {}
        for labels, value in scrape.samples("keeper_delta_drift_ratio"):
            v = int(labels.get("vault", "-1"))
            drift[v] = max(drift.get(v, Decimal(0)), Decimal(repr(value)))
        pnl = {
            int(lb.get("vault", "-1")): Decimal(repr(v)) for lb, v in scrape.samples("keeper_hedge_pnl_equity_ratio")
        }
        fee_usd30, gas_wei, _ = costs(store)
        units = [Decimal(10) ** a.decimals for a in snap.assets]
        price = [prices.get(a.symbol, Decimal(1)) for a in snap.assets]
        vaults = {}
        for b in snap.books:
            vaults[b.vault_id] = VaultRow(
                equity=Decimal(b.equity_usd) / Decimal(10**30), glp=Decimal(b.glp) / Decimal(10**18),
                hedge=tuple(Decimal(x) / u for x, u in zip(b.debt, units, strict=True)),
                collateral_usd=sum((Decimal(x) / u * p for x, u, p in zip(b.collateral, units, price, strict=True)),
                                   Decimal(0)),
                buffer_usd=Decimal(b.cash[b.denomination]) / units[b.denomination] * price[b.denomination],
                drift=drift.get(b.vault_id, Decimal(0)), hedge_pnl=pnl.get(b.vault_id, Decimal(0)),
                fees_usd=Decimal(fee_usd30.get(b.vault_id, 0)) / Decimal(10**30),
                gas_eth=Decimal(gas_wei.get(b.vault_id, 0)) / Decimal(10**18),
                hf=_vault_hf(snap, b.vault_id, price), hf_before=_vault_hf(before, b.vault_id, price),
            )
        return Row(
            step=step, time=snap.block_timestamp, block=snap.block_number, prices=dict(prices),
            hf_before=_hf(before), hf=_hf(snap), vaults=vaults, rebalances=snap.manager.rebalance_count,
            in_flight=int(scrape.total("keeper_pending_transactions")), last_action=action,
            lyf_leverage=Decimal(repr(scrape.total("keeper_lyf_leverage_ratio"))),
            lyf_delta=Decimal(repr(scrape.total("keeper_lyf_delta_ratio"))),
            lyf_rebalances=int(scrape.total("keeper_lyf_rebalances_total", result="success")),
        )

    def table(self, row: Row, unmined: int) -> list[str]:
        """The live table (≤ WIDTH columns): the account lines, then per vault its book (GLP, hedge = debt per
        asset in tokens, collateral and buffer in USD) and its measures (drift, hedge PnL, fees and gas)."""
        day = Decimal(row.step * self.options.step_seconds) / Decimal(DAY)
        columns = [("equity $", 10), ("GLP units", 10), *((f"hedge {s}", 10) for s in self.symbols),
                   ("collat. $", 10), ("buffer $", 9), ("drift", 6), ("PnL/eq", 6), ("fees $", 7), ("gas ETH", 7)]
        lines = [
            f"day {day:5.2f}/{self.options.days}  block {row.block}  ETH {row.prices['WETH']:,.2f}  "
            f"BTC {row.prices['WBTC']:,.2f}  HF {row.hf:.3f} (after the market's move {row.hf_before:.3f})",
            f"rebalances mined {row.rebalances}  unmined {unmined}  in flight (not final) {row.in_flight}  "
            f"last: {row.last_action}",
            "  " + "vault".ljust(7) + "".join(f" {name:>{width}}" for name, width in columns),
        ]
        for vault, v in sorted(row.vaults.items()):
            cells = [f"{v.equity:,.0f}", f"{v.glp:,.0f}",
                     *(_tokens(x, s) if x else "-" for x, s in zip(v.hedge, self.symbols, strict=False)),
                     f"{v.collateral_usd:,.0f}", f"{v.buffer_usd:,.0f}", f"{v.drift * 100:.2f}%",
                     f"{v.hedge_pnl * 100:.2f}%", f"{v.fees_usd:,.0f}", f"{v.gas_eth:.4f}"]
            label = f"{vault} {self.names.get(vault, '')}"
            lines.append("  " + label.ljust(7) + "".join(f" {c:>{w}}" for c, (_, w) in zip(cells, columns,
                                                                                            strict=False)))
        if self.lyf is not None:
            lines.append(f"  LYF {LYF_NAME}: AVAX {row.avax:.2f}  leverage {row.lyf_leverage:.4f}×  "
                         f"delta {row.lyf_delta * 100:+.3f}% of the debt  rebalances {row.lyf_rebalances}")
        return lines

    def _show(self, row: Row, live: bool, steps: int, unmined: int) -> None:
        lines = self.table(row, unmined)
        if live:
            sys.stdout.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n")
            sys.stdout.flush()
        elif row.step % max(1, steps // 16) == 0 or row.step == steps:
            self.say("\n".join(lines))

    # --- output -----------------------------------------------------------------------------------------------
    def summary_document(self) -> dict[str, Any]:
        """summary.json: what the run did. Money as decimal strings (fees exact from the journal)."""
        o = self.options
        j = self.journal
        last = self.rows[-1] if self.rows else None
        eth = last.prices["WETH"] if last else START["WETH"]
        vaults: dict[str, Any] = {}
        for v in sorted(last.vaults) if last else []:
            fee_usd30 = j.fee_usd30.get(v, 0) if j else 0
            gas_wei = j.gas_wei.get(v, 0) if j else 0
            vaults[str(v)] = {
                "name": self.names.get(v, ""),
                "equity_start_usd": _money(self.rows[0].vaults[v].equity) if v in self.rows[0].vaults else None,
                "equity_end_usd": _money(last.vaults[v].equity) if last else None,
                "max_drift": str(max(r.vaults[v].drift for r in self.rows if v in r.vaults)),
                "min_health_factor": str(min((h for r in self.rows if v in r.vaults
                                              for h in (r.vaults[v].hf_before, r.vaults[v].hf) if h > 0),
                                             default=Decimal(0)).quantize(Decimal("0.0001"))),
                "fees_usd": _money(Decimal(fee_usd30) / Decimal(10**30)),
                "gas_eth": str(Decimal(gas_wei) / Decimal(10**18)),
                "gas_usd_at_end_price": _money(Decimal(gas_wei) / Decimal(10**18) * eth),
            }
        hfs = [h for r in self.rows for h in (r.hf_before, r.hf) if h > 0]
        return {
            "days": o.days, "step_hours": o.step_seconds // HOUR, "seed": o.seed,
            "volatility": {s: str(x) for s, x in o.volatility.items()},
            "crash": {"step": o.shock_step(o.crash_day, 3), **{s: str(x) for s, x in o.crash.items()}},
            "rally": {"step": o.shock_step(o.rally_day, 5), **{s: str(x) for s, x in o.rally.items()}},
            "steps": len(self.rows), "steps_planned": o.steps, "wall_seconds": round(self.wall_seconds, 1),
            "anvil": {"pid": self.pids.get("anvil")},
            "daemon": {"pid": self.pids.get("daemon"), "started": "daemon" in self.pids, "exit_code": self.daemon_exit},
            "rebalances_on_chain": last.rebalances if last else 0,
            "rebalances_by_trigger": j.vault_triggers if j else {},
            "recurring_cycles": j.vault_triggers.get("cycle", 0) if j else 0,
            "rebalances_mined": j.vault_rebalances if j else 0,
            "intent_outcomes": j.outcomes if j else {},
            "reverted_on_chain_by_error": j.reverted_errors if j else {},
            "refused_by_simulation_by_error": j.refused_errors if j else {},
            "submitted_by_trigger": self.submitted,
            "rebalance_results": self.results,
            "failed_transaction_gas_eth": str(Decimal(repr(self.failed_gas_wei)) / Decimal(10**18)),
            "unattributed_gas_eth": str(Decimal(j.unattributed_gas_wei if j else 0) / Decimal(10**18)),
            "min_health_factor": str(min(hfs)) if hfs else None,
            "vaults": vaults,
            "lyf": {
                "rebalances_mined": j.lyf_rebalances if j else 0,
                "rebalances_by_trigger": j.lyf_triggers if j else {},
                "results": self.lyf_results,
            },
        }

    def summary(self) -> str:
        if not self.rows:
            return "no step completed"
        s = self.summary_document()
        wall = int(self.wall_seconds)
        lines = ["", f"summary: {s['steps']} steps of {s['step_hours']} h ({s['days']} simulated days) in "
                     f"{wall // 60} min {wall % 60} s"]
        lines.append(f"  rebalances on chain: {s['rebalances_on_chain']} (VaultManager.rebalanceCount, the "
                     f"deployment's seeding included), {s['rebalances_mined']} by the keeper; its intents: "
                     + _counts(s["intent_outcomes"]))
        if s["reverted_on_chain_by_error"] or s["refused_by_simulation_by_error"]:
            lines.append("  reverted on chain, by error: " + (_counts(s["reverted_on_chain_by_error"]) or "none")
                         + "; refused by the simulation gate, by error: "
                         + (_counts(s["refused_by_simulation_by_error"]) or "none"))
        lines.append("  mined rebalances by trigger (each kind once per rebalance): "
                     + _counts(s["rebalances_by_trigger"]) + f"; recurring cycles {s['recurring_cycles']}")
        lines.append("  submitted, by trigger (keeper_triggers_fired_total): " + _counts(s["submitted_by_trigger"]))
        hf = s["min_health_factor"]
        lines.append(f"  min account health factor: {Decimal(hf):.3f} (after each market move and each answer)" if hf
                     else "  min account health factor: - (no debt)")
        for v, doc in s["vaults"].items():
            lines.append(
                f"  vault {v} ({doc['name']}): equity {Decimal(doc['equity_start_usd']):,.2f} → "
                f"{Decimal(doc['equity_end_usd']):,.2f} USD, max drift {Decimal(doc['max_drift']) * 100:.2f}%, "
                f"min HF {Decimal(doc['min_health_factor']):.3f}, "
                f"fees {Decimal(doc['fees_usd']):,.2f} USD, gas {Decimal(doc['gas_eth']):.6f} ETH "
                f"= {Decimal(doc['gas_usd_at_end_price']):,.2f} USD"
            )
        lines.append(f"  gas of transactions that did not take effect: {Decimal(s['failed_transaction_gas_eth']):.6f} "
                     f"ETH; not attributed to a vault: {Decimal(s['unattributed_gas_eth']):.6f} ETH")
        if self.lyf is not None:
            levs = [r.lyf_leverage for r in self.rows if r.lyf_leverage > 0]
            worst = max((abs(r.lyf_delta) for r in self.rows), default=Decimal(0))
            lines.append(
                f"  LYF {LYF_NAME}: {s['lyf']['rebalances_mined']} rebalances mined (by trigger: "
                f"{_counts(s['lyf']['rebalances_by_trigger'])}; results: {_counts(s['lyf']['results'])}), leverage "
                f"{min(levs, default=Decimal(0)):.4f}–{max(levs, default=Decimal(0)):.4f}× (target 3.0), "
                f"max |delta| {worst * 100:.3f}% of the debt"
            )
        return "\n".join(lines)

    def report(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "rows.csv").open("w", newline="") as handle:
            self._write_csv(handle)
        self._plots(folder)
        (folder / "summary.json").write_text(json.dumps(self.summary_document(), indent=1) + "\n")
        return folder

    def _write_csv(self, handle: TextIO) -> None:
        writer = csv.writer(handle)
        vaults = sorted(self.rows[-1].vaults) if self.rows else []
        per_vault = ["equity_usd", "glp", *(f"hedge_{s}" for s in self.symbols), "collateral_usd", "buffer_usd",
                     "drift", "hedge_pnl", "fees_usd", "gas_eth", "hf", "hf_before"]
        writer.writerow(["step", "time", "block", "eth_usd", "btc_usd", "hf_before", "hf", "rebalances", "in_flight",
                         *(f"{name}_{v}" for v in vaults for name in per_vault),
                         "avax_usd", "lyf_leverage", "lyf_delta_ratio", "lyf_rebalances"])
        for r in self.rows:
            cells: list[object] = []
            for v in vaults:
                x = r.vaults.get(v)
                cells += ([x.equity, x.glp, *x.hedge, x.collateral_usd, x.buffer_usd, x.drift, x.hedge_pnl,
                           x.fees_usd, x.gas_eth, x.hf, x.hf_before] if x else [""] * len(per_vault))
            writer.writerow([r.step, r.time, r.block, r.prices["WETH"], r.prices["WBTC"], r.hf_before, r.hf,
                             r.rebalances, r.in_flight, *cells, r.avax, r.lyf_leverage, r.lyf_delta,
                             r.lyf_rebalances])

    def _plots(self, folder: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if not self.rows:
            return
        days = [float(r.step * self.options.step_seconds) / DAY for r in self.rows]
        vaults = sorted(self.rows[-1].vaults)
        zero = Decimal(0)
        empty = VaultRow(zero, zero, (), zero, zero, zero, zero, zero, zero, zero, zero)

        def vault(r: Row, v: int) -> VaultRow:
            return r.vaults.get(v, empty)

        # plotting only: float conversion happens here, after every number was computed exactly
        series: dict[str, tuple[str, Callable[[Row, int], float]]] = {
            "delta_drift.png": ("max delta drift (%)", lambda r, v: float(vault(r, v).drift) * 100),
            "hedge_pnl.png": ("hedge PnL since settlement / equity (%)",
                              lambda r, v: float(vault(r, v).hedge_pnl) * 100),
            "equity.png": ("equity (USD)", lambda r, v: float(vault(r, v).equity)),
        }
        for name, (title, value) in series.items():
            fig, ax = plt.subplots(figsize=(9, 4))
            for v in vaults:
                ax.plot(days, [value(r, v) for r in self.rows], label=f"vault {v}")
            ax.set_title(title)
            ax.set_xlabel("simulated days")
            ax.legend()
            fig.tight_layout()
            fig.savefig(folder / name, dpi=100)
            plt.close(fig)
        fig, (fees_ax, gas_ax) = plt.subplots(1, 2, figsize=(11, 4))
        for v in vaults:
            fees_ax.plot(days, [float(vault(r, v).fees_usd) for r in self.rows], label=f"vault {v}")
            gas_ax.plot(days, [float(vault(r, v).gas_eth) for r in self.rows], label=f"vault {v}")
        fees_ax.set_title("cumulative GMX fees (USD, at the oracle when mined)")
        gas_ax.set_title("cumulative gas (ETH)")
        for ax in (fees_ax, gas_ax):
            ax.set_xlabel("simulated days")
            ax.legend()
        fig.tight_layout()
        fig.savefig(folder / "fees.png", dpi=100)
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(9, 4))
        ax.plot(days, [float(r.hf) for r in self.rows], label="account", color="black")
        for v in vaults:  # the vault's own, after the market's move (where the trigger sees it) and after the answer
            line, = ax.plot(days, [float(vault(r, v).hf_before) for r in self.rows], linestyle="--", alpha=0.6)
            ax.plot(days, [float(vault(r, v).hf) for r in self.rows], color=line.get_color(), label=f"vault {v}")
        ax.axhline(1.2, color="orange", linestyle="--", label="trigger 1.2")
        ax.axhline(1.0, color="red", linestyle=":", label="liquidation")
        ax.set_title("health factor: account and per vault (dashed: after the market's move)")
        ax.set_xlabel("simulated days")
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / "health_factor.png", dpi=100)
        plt.close(fig)
        if self.lyf is not None:
            fig, ax = plt.subplots(figsize=(9, 4))
            ax.plot(days, [float(r.lyf_leverage) for r in self.rows], label="leverage", color="tab:blue")
            ax.axhline(3.0, color="tab:blue", linestyle=":", label="target 3.0")
            ax.set_ylabel("leverage (×)")
            ax.set_xlabel("simulated days")
            twin = ax.twinx()
            twin.plot(days, [float(r.lyf_delta) * 100 for r in self.rows], label="delta", color="tab:red")
            twin.set_ylabel("delta (% of the volatile debt)")
            ax.set_title(f"LYF position {LYF_NAME}: leverage and delta")
            fig.legend(loc="upper right")
            fig.tight_layout()
            fig.savefig(folder / "lyf.png", dpi=100)
            plt.close(fig)


PLOTS = ("delta_drift.png", "health_factor.png", "hedge_pnl.png", "equity.png", "fees.png", "lyf.png")


def _vault_hf(snap: Snapshot, vault_id: int, price: list[Decimal]) -> Decimal:
    """A vault's own health factor at `price`: Σ collateral·p·LT / Σ debt·p (0 = no debt; display)."""
    book = next((b for b in snap.books if b.vault_id == vault_id), None)
    if book is None:
        return Decimal(0)
    units = [Decimal(10) ** a.decimals for a in snap.assets]
    debt = sum((Decimal(x) / u * p for x, u, p in zip(book.debt, units, price, strict=True)), Decimal(0))
    if not debt:
        return Decimal(0)
    coll = sum((Decimal(x) / u * p * a.liquidation_threshold_bps / 10_000
                for x, u, p, a in zip(book.collateral, units, price, snap.assets, strict=True)), Decimal(0))
    return coll / debt


def _hf(snap: Snapshot) -> Decimal:
    hf = snap.lending.health_factor
    return Decimal(0) if hf == MAX_UINT256 else Decimal(hf) / Decimal(10**18)


def _money(x: Decimal) -> str:
    return str(x.quantize(Decimal("0.01"), ROUND_HALF_EVEN))


def _tokens(x: Decimal, symbol: str) -> str:
    """A hedge size for the table: whole units for a stable, 3 decimals otherwise (display)."""
    return f"{x:,.0f}" if symbol.startswith("USD") else f"{x:,.3f}"


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or "-"


def run_demo(options: DemoOptions) -> int:
    return Demo(options).run()


__all__ = ["PLOTS", "REQUIRED_TRIGGERS", "Demo", "DemoOptions", "Row", "VaultRow", "options_from_args", "plan_triggers",
           "run_demo", "tally"]
