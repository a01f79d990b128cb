"""Benchmark: the daemon's memory with 1000 vaults, at start and after many ticks.

A VaultManager with N vaults (empty books: every tick still reads and decodes all of them and runs the
decision core over them); the real `keeper run` as a subprocess polling every 50 ms; the benchmark
mines one block at a time and waits for the daemon to tick it (keeper_ticks_total). RSS, threads and
open file descriptors come from /proc/<pid>.

    .venv/bin/python -m bench.memory [--vaults 1000] [--ticks 1800]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from web3 import Web3

from bench.reader import manager_with
from keeper.config import render_toml
from keeper.devnet.anvil import Anvil, free_port, rpc
from keeper.devnet.deploy import deploy_reference_system
from keeper.devnet.session import devnet_config


def proc_stats(pid: int) -> tuple[int, int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    threads = int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))
    fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    return rss_kb, threads, fds


def ticks(url: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("keeper_ticks_total{"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vaults", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=1800)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Anvil.start(extra_args=("--gas-limit", "100000000")) as node:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 120}))
        d = deploy_reference_system(w3)
        vm = manager_with(w3, d, args.vaults)
        config = devnet_config(node, d)
        config["contracts"] = {**config["contracts"], "vault_manager": vm}  # type: ignore[dict-item]
        port = free_port()
        config["state_dir"] = f"{tmp}/state"
        config["metrics"] = {"host": "127.0.0.1", "port": port}
        config["schedule"] = {"poll_seconds": 0.05, "in_flight_seconds": 1.0}
        path = Path(tmp) / "keeper.toml"
        path.write_text(render_toml(config))
        url = f"http://127.0.0.1:{port}"
        log = Path(tmp, "keeper.log").open("w")  # noqa: SIM115 - closed in finally
        daemon = subprocess.Popen(
            [sys.executable, "-m", "keeper.cli", "run", "--config", str(path)], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if ticks(url) >= 1:
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            start_stats = proc_stats(daemon.pid)
            started = time.monotonic()
            done = ticks(url)
            target = done + args.ticks
            while done < target:
                rpc(node.url, "evm_mine")
                wait_until = time.monotonic() + 10
                while ticks(url) <= done and time.monotonic() < wait_until:
                    time.sleep(0.01)
                done = ticks(url)
            elapsed = time.monotonic() - started
            end_stats = proc_stats(daemon.pid)
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
            log.close()
    growth = (end_stats[0] - start_stats[0]) / start_stats[0] * 100
    print(
        "| vaults | ticks | wall (s) | ms/tick | RSS start (MiB) | RSS end (MiB) | growth "
        "| threads start/end | fds start/end |\n"
        f"|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| {args.vaults} | {args.ticks} | {elapsed:.0f} | {elapsed / args.ticks * 1000:.0f} | "
        f"{start_stats[0] / 1024:.1f} | {end_stats[0] / 1024:.1f} | {growth:+.1f}% | "
        f"{start_stats[1]}/{end_stats[1]} | {start_stats[2]}/{end_stats[2]} |"
    )


if __name__ == "__main__":
    main()
