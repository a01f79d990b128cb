"""`make demo`: the real `keeper run` daemon on the embedded devnet while a market simulator drives it.

Owns the demo's orchestration: devnet up, daemon started as a subprocess (the product, unchanged),
a market path (GBM with a scripted crash and rally, trader OI swings, deposits and withdrawals,
rewards accruing as compressed time passes), a live table, the summary and the report folder (raw
CSV + PNG plots). Everything it starts it stops, by pid, also on Ctrl-C. A test and demo tool: the
keeper's decision path never imports it.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, TextIO

from web3 import Web3

from keeper.chain.reader import Addresses, SnapshotReader
from keeper.config import render_toml
from keeper.devnet.anvil import free_port, rpc
from keeper.devnet.lyf import PRICE_USD, LyfDeployment, move_price
from keeper.devnet.market import Market, Script, Shock, gbm_paths, oi_swing
from keeper.devnet.session import devnet_config, lyf_position_config, start_devnet
from keeper.snapshot import MAX_UINT256, Snapshot

HOUR = 3600
LYF_NAME = "avax-usdc"
START = {"USDC": Decimal(1), "WETH": Decimal(3000), "WBTC": Decimal(60000)}


@dataclass(frozen=True)
class DemoOptions:
    days: int = 8
    step_seconds: int = 2 * HOUR  # simulated time per step
    seed: int = 11
    out: Path = Path(".keeper/demo")
    step_wall_seconds: float = 0.6  # real time the daemon gets per step (several blocks)
    live: bool = True


@dataclass
class Row:
    step: int
    time: int
    block: int
    prices: dict[str, Decimal]
    hf: Decimal
    equity: dict[int, Decimal]
    drift: dict[int, Decimal]
    hedge_pnl: dict[int, Decimal]
    fees_usd: dict[int, Decimal]
    rebalances: int
    pending: int
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


@dataclass
class Demo:
    options: DemoOptions
    rows: list[Row] = field(default_factory=list)
    say: Callable[[str], None] = print

    def run(self) -> int:
        o = self.options
        o.out.mkdir(parents=True, exist_ok=True)
        config_path = o.out / "devnet.toml"
        with start_devnet(port=None, block_time=None, config_out=config_path, with_lyf=True) as dev:
            w3 = Web3(Web3.HTTPProvider(dev.anvil.url, request_kwargs={"timeout": 60}))
            d = dev.deployment
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
            with log_path.open("w") as log:
                daemon = subprocess.Popen(
                    [sys.executable, "-m", "keeper.cli", "run", "--config", str(config_path)],
                    stdout=log, stderr=subprocess.STDOUT,
                )
                self.say(f"\nkeeper run started (pid {daemon.pid}); metrics http://127.0.0.1:{port}/metrics; "
                         f"log {log_path}\n")
                interrupted = False
                try:
                    self._drive(w3, d, Scrape(f"http://127.0.0.1:{port}"), dev.anvil.url, daemon)
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
                self.say(f"keeper run stopped (exit {daemon.returncode})")
        self.say("devnet stopped")
        report = self.report(o.out / "report")
        self.say(self.summary())
        self.say(f"\nreport written to {report}/ (rows.csv and PNG plots)")
        return 130 if interrupted else 0

    # --- the market -------------------------------------------------------------------------------------------
    def _drive(self, w3: Web3, d: Any, scrape: Scrape, url: str, daemon: subprocess.Popen[bytes]) -> None:
        o = self.options
        steps = o.days * 24 * HOUR // o.step_seconds
        day = 24 * HOUR // o.step_seconds
        script = Script(
            seed=o.seed, step_seconds=o.step_seconds,
            shocks=(Shock(3 * day, "WETH", Decimal("0.78")), Shock(3 * day, "WBTC", Decimal("0.82")),
                    Shock(5 * day, "WETH", Decimal("1.30")), Shock(5 * day, "WBTC", Decimal("1.25"))),
        )
        path = gbm_paths(script, START, steps)
        market = Market(w3, d)
        avax = Decimal(PRICE_USD)
        reader = SnapshotReader(
            w3, Addresses(d.vault_manager, d.multicall, d.gmx_vault, d.glp_manager, d.reward_router, d.pool, d.glp),
            d.keeper,
        )
        last_count = 0
        last_action = "-"
        live = o.live and sys.stdout.isatty()
        self._wait_ready(scrape, daemon)
        for step in range(1, steps + 1):
            if daemon.poll() is not None:
                raise RuntimeError(f"keeper run exited with {daemon.returncode}; see its log")
            market.advance(o.step_seconds)
            market.set_prices(path[step])
            if self.lyf is not None:  # AVAX follows ETH's path with 1.5× its moves; the feed is refreshed every step
                factor = 1 + (path[step]["WETH"] / path[step - 1]["WETH"] - 1) * Decimal("1.5")
                avax *= factor
                move_price(w3, self.lyf, Fraction(factor))
            eth_reserved = oi_swing(step, 2 * day, Decimal(3000), Decimal("0.35"))
            market.set_open_interest("WETH", eth_reserved, Decimal(10_000_000), Decimal(3100))
            if step % day == day // 2:  # a deposit a day, a withdrawal every other day
                user = d.users[step % 2]
                vault = (step // day) % 3
                market.deposit(user, vault, [50_000 * 10**6, 20 * 10**18, 10**8][vault])
                if step % (2 * day) == day // 2 and market.shares(user, vault) > 0:
                    market.request_withdraw(user, vault, market.shares(user, vault) // 20)
            deadline = time.monotonic() + o.step_wall_seconds
            while time.monotonic() < deadline:
                rpc(url, "evm_mine")
                time.sleep(0.15)
            scrape.refresh()
            self._settle(scrape, url)
            snap = reader.read()
            count = snap.manager.rebalance_count
            if count > last_count:
                last_action = f"rebalance #{count} at step {step}"
                last_count = count
            row = self._row(step, snap, path[step], scrape, last_action)
            row.avax = avax
            self.rows.append(row)
            self._show(row, live, steps)
            self._by_trigger = ", ".join(
                f"{labels.get('trigger')}: {int(v)}" for labels, v in scrape.samples("keeper_triggers_fired_total")
            )
            self._lyf_by_trigger = ", ".join(
                f"{labels.get('trigger')}: {int(v)}" for labels, v in scrape.samples("keeper_lyf_triggers_total")
            )
            self._lyf_results = ", ".join(
                f"{labels.get('result')}: {int(v)}" for labels, v in scrape.samples("keeper_lyf_rebalances_total")
            )

    def _wait_ready(self, scrape: Scrape, daemon: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if daemon.poll() is not None:
                raise RuntimeError(f"keeper run exited with {daemon.returncode}; see its log")
            scrape.refresh()
            if scrape.total("keeper_leader") >= 1:
                return
            time.sleep(0.3)
        raise RuntimeError("keeper run did not become leader within 60 s")

    def _settle(self, scrape: Scrape, url: str) -> None:
        """Let an in-flight rebalance finish before the market moves again (bounded)."""
        for _ in range(40):
            if scrape.total("keeper_pending_transactions") == 0:
                return
            rpc(url, "evm_mine")
            time.sleep(0.15)
            scrape.refresh()

    def _row(self, step: int, snap: Snapshot, prices: dict[str, Decimal], scrape: Scrape, action: str) -> Row:
        drift: dict[int, Decimal] = {}
        for labels, value in scrape.samples("keeper_delta_drift_ratio"):
            v = int(labels.get("vault", "-1"))
            drift[v] = max(drift.get(v, Decimal(0)), Decimal(repr(value)))
        pnl = {
            int(lb.get("vault", "-1")): Decimal(repr(v)) for lb, v in scrape.samples("keeper_hedge_pnl_equity_ratio")
        }
        fees: dict[int, Decimal] = {}
        for labels, value in scrape.samples("keeper_fees_paid_total"):
            i = snap.asset_index(labels["asset"])
            usd = Decimal(repr(value)) / Decimal(10) ** snap.assets[i].decimals * prices[labels["asset"]]
            fees[int(labels["vault"])] = fees.get(int(labels["vault"]), Decimal(0)) + usd
        for labels, value in scrape.samples("keeper_gas_spent_wei_total"):
            gas_usd = Decimal(repr(value)) / Decimal(10**18) * prices["WETH"]
            fees[int(labels["vault"])] = fees.get(int(labels["vault"]), Decimal(0)) + gas_usd
        hf = snap.lending.health_factor
        return Row(
            step=step, time=snap.block_timestamp, block=snap.block_number, prices=dict(prices),
            hf=Decimal(0) if hf == MAX_UINT256 else Decimal(hf) / Decimal(10**18),
            equity={b.vault_id: Decimal(b.equity_usd) / Decimal(10**30) for b in snap.books},
            drift=drift, hedge_pnl=pnl, fees_usd=fees, rebalances=snap.manager.rebalance_count,
            pending=int(scrape.total("keeper_pending_transactions")), last_action=action,
            lyf_leverage=Decimal(repr(scrape.total("keeper_lyf_leverage_ratio"))),
            lyf_delta=Decimal(repr(scrape.total("keeper_lyf_delta_ratio"))),
            lyf_rebalances=int(scrape.total("keeper_lyf_rebalances_total", result="success")),
        )

    def _show(self, row: Row, live: bool, steps: int) -> None:
        day = Decimal(row.step * self.options.step_seconds) / Decimal(24 * HOUR)
        lines = [
            f"day {day:5.2f}/{self.options.days}  block {row.block}  ETH {row.prices['WETH']:.2f}  "
            f"BTC {row.prices['WBTC']:.2f}  HF {row.hf:.3f}  rebalances {row.rebalances}  "
            f"pending {row.pending}  last: {row.last_action}",
            "  vault  equity USD      max drift  hedge PnL/eq  fees+gas USD",
        ]
        for vault, equity in sorted(row.equity.items()):
            lines.append(
                f"  {vault:<5}  {equity:>14,.2f}  {row.drift.get(vault, Decimal(0)) * 100:>8.2f}%  "
                f"{row.hedge_pnl.get(vault, Decimal(0)) * 100:>11.2f}%  {row.fees_usd.get(vault, Decimal(0)):>12,.2f}"
            )
        if self.lyf is not None:
            lines.append(f"  LYF {LYF_NAME}: AVAX {row.avax:.2f}  leverage {row.lyf_leverage:.4f}×  "
                         f"delta {row.lyf_delta * 100:+.3f}% of the debt  rebalances {row.lyf_rebalances}")
        if live:
            sys.stdout.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n")
            sys.stdout.flush()
        elif row.step % max(1, steps // 16) == 0 or row.step == steps:
            self.say("\n".join(lines))

    # --- output -----------------------------------------------------------------------------------------------
    def summary(self) -> str:
        if not self.rows:
            return "no step completed"
        first, last = self.rows[0], self.rows[-1]
        vaults = sorted(last.equity)
        lines = ["", "summary", f"  simulated {len(self.rows)} steps, {last.rebalances} rebalances on chain"]
        lines.append("  rebalances by trigger: " + (self._by_trigger or "-"))
        max_drift = {v: max((r.drift.get(v, Decimal(0)) for r in self.rows), default=Decimal(0)) for v in vaults}
        hfs = [r.hf for r in self.rows if r.hf > 0]
        lines.append(f"  min health factor: {min(hfs):.3f}" if hfs else "  min health factor: -")
        for v in vaults:
            lines.append(
                f"  vault {v}: equity {first.equity.get(v, Decimal(0)):,.2f} → {last.equity[v]:,.2f} USD, "
                f"max drift {max_drift[v] * 100:.2f}%, fees+gas {last.fees_usd.get(v, Decimal(0)):,.2f} USD"
            )
        if self.lyf is not None:
            levs = [r.lyf_leverage for r in self.rows if r.lyf_leverage > 0]
            worst = max((abs(r.lyf_delta) for r in self.rows), default=Decimal(0))
            lines.append(
                f"  LYF {LYF_NAME}: {last.lyf_rebalances} rebalances ({self._lyf_results or '-'}; by trigger: "
                f"{self._lyf_by_trigger or '-'}), leverage {min(levs, default=Decimal(0)):.4f}–"
                f"{max(levs, default=Decimal(0)):.4f}× (target 3.0), max |delta| {worst * 100:.3f}% of the debt"
            )
        return "\n".join(lines)

    _by_trigger: str = ""
    _lyf_by_trigger: str = ""
    _lyf_results: str = ""
    lyf: LyfDeployment | None = None

    def report(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "rows.csv").open("w", newline="") as handle:
            self._write_csv(handle)
        self._plots(folder)
        return folder

    def _write_csv(self, handle: TextIO) -> None:
        writer = csv.writer(handle)
        vaults = sorted(self.rows[-1].equity) if self.rows else []
        writer.writerow(["step", "time", "block", "eth_usd", "btc_usd", "hf", "rebalances", "pending",
                         *(f"equity_{v}" for v in vaults), *(f"drift_{v}" for v in vaults),
                         *(f"hedge_pnl_{v}" for v in vaults), *(f"fees_usd_{v}" for v in vaults),
                         "avax_usd", "lyf_leverage", "lyf_delta_ratio", "lyf_rebalances"])
        for r in self.rows:
            writer.writerow([r.step, r.time, r.block, r.prices["WETH"], r.prices["WBTC"], r.hf, r.rebalances,
                             r.pending, *(r.equity.get(v, "") for v in vaults), *(r.drift.get(v, "") for v in vaults),
                             *(r.hedge_pnl.get(v, "") for v in vaults), *(r.fees_usd.get(v, "") for v in vaults),
                             r.avax, r.lyf_leverage, r.lyf_delta, r.lyf_rebalances])

    def _plots(self, folder: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if not self.rows:
            return
        days = [float(r.step * self.options.step_seconds) / 86400 for r in self.rows]
        vaults = sorted(self.rows[-1].equity)
        # plotting only: float conversion happens here, after every number was computed exactly
        series: dict[str, tuple[str, Callable[[Row, int], float]]] = {
            "delta_drift.png": ("max delta drift (%)", lambda r, v: float(r.drift.get(v, 0)) * 100),
            "hedge_pnl.png": ("hedge PnL since settlement / equity (%)",
                              lambda r, v: float(r.hedge_pnl.get(v, 0)) * 100),
            "equity.png": ("equity (USD)", lambda r, v: float(r.equity.get(v, 0))),
            "fees.png": ("cumulative fees + gas (USD)", lambda r, v: float(r.fees_usd.get(v, 0))),
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
        fig, ax = plt.subplots(figsize=(9, 4))
        ax.plot(days, [float(r.hf) for r in self.rows], label="health factor")
        ax.axhline(1.2, color="orange", linestyle="--", label="trigger 1.2")
        ax.axhline(1.0, color="red", linestyle=":", label="liquidation")
        ax.set_title("lending account health factor")
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


def run_demo(options: DemoOptions) -> int:
    demo = Demo(options)
    code = demo.run()
    summary = {"steps": len(demo.rows), "rebalances": demo.rows[-1].rebalances if demo.rows else 0,
               "triggers": demo._by_trigger, "lyf_rebalances": demo.rows[-1].lyf_rebalances if demo.rows else 0,
               "lyf_triggers": demo._lyf_by_trigger}
    (options.out / "report" / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return code
