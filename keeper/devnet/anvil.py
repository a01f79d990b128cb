"""The anvil node process: find the binary shipped in node_modules, start it on a free port, stop it by pid.

Owns the node's lifetime only; knows nothing about contracts.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from keeper.errors import ConfigError, ReadError

_REPO_ROOT = Path(__file__).resolve().parents[2]

# anvil's well-known development accounts (mnemonic "test test ... junk"); devnet and tests only.
DEV_ACCOUNTS = (
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
    "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
)
DEV_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
)


def anvil_binary() -> Path:
    """The anvil executable from the `@foundry-rs/anvil` npm package (its per-platform binary)."""
    override = os.environ.get("KEEPER_ANVIL_BIN")
    if override:
        return Path(override)
    system = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}.get(platform.system(), "linux")
    machine = {"x86_64": "amd64", "AMD64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine(), "amd64"
    )
    exe = "anvil.exe" if system == "win32" else "anvil"
    path = _REPO_ROOT / "node_modules" / "@foundry-rs" / f"anvil-{system}-{machine}" / "bin" / exe
    if not path.exists():
        raise ConfigError(f"anvil binary not found at {path}; run `make setup` (npm ci)")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rpc(url: str, method: str, params: list[object] | None = None, timeout: float = 5.0) -> object:
    """One raw JSON-RPC call (used for anvil's own methods and the readiness probe)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) URL we built
        answer = json.loads(response.read())
    if "error" in answer:
        raise ReadError(f"{method}: {answer['error']}")
    return answer.get("result")


@dataclass
class Anvil:
    """A running anvil process. Use as a context manager or call `stop()`; it is stopped by its pid."""

    port: int
    block_time: float | None = None
    host: str = "127.0.0.1"
    chain_id: int = 31337
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: Path | None = None

    @property
    def url(self) -> str:
        local = self.host in ("127.0.0.1", "0.0.0.0")  # noqa: S104 - 0.0.0.0 is only ever a bind address here
        return f"http://{'127.0.0.1' if local else self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @classmethod
    def start(
        cls,
        port: int | None = None,
        block_time: float | None = None,
        *,
        chain_id: int = 31337,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
        startup_timeout: float = 20.0,
    ) -> Anvil:
        node = cls(port=port or free_port(), block_time=block_time, host=host, chain_id=chain_id, log_path=log_path)
        args = [
            str(anvil_binary()),
            "--host", host,
            "--port", str(node.port),
            "--chain-id", str(chain_id),
            "--accounts", str(len(DEV_ACCOUNTS)),
            "--balance", "1000000",
            "--silent",
            *extra_args,
        ]
        if block_time is not None:
            args += ["--block-time", str(block_time)]
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - handed to Popen
        try:
            node.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if log_path:
                out.close()  # type: ignore[union-attr]
        node._wait_ready(startup_timeout)
        return node

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ReadError(f"anvil exited with code {self.process.returncode} before it was ready")
            try:
                rpc(self.url, "eth_chainId", timeout=1.0)
                return
            except (OSError, urllib.error.URLError, ReadError):
                time.sleep(0.05)
        self.stop()
        raise ReadError(f"anvil did not answer on {self.url} within {timeout:.0f}s")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the process by pid, SIGKILL after `timeout`; idempotent."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def __enter__(self) -> Anvil:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
