"""A JSON-RPC fault proxy on loopback: forwards POSTs to an upstream node and injects one fault kind.

    with FaultProxy(anvil.url, Fault("http_5xx"), max_faults=50, fault_seconds=10) as proxy:
        cfg["chain"]["rpc_urls"] = [proxy.url, anvil.url]

Faults: `latency` (delay then forward), `timeout` (hold the request, then close without an answer),
`http_429` / `http_5xx`, `drop` (close the connection at once), `malformed` (a 200 with a broken JSON body),
`lag` (the head `lag_blocks` behind: eth_blockNumber and "latest" rewritten), `wrong_chain` (eth_chainId /
net_version answer another chain), `flip` (alternate requests go to the `alternate` upstream). A fault can be
limited to some methods (`methods`) or spare some (`spare`: e.g. the head poll, so that the first request to
fail is a read inside the keeper's tick).

Bounded: a fault is injected at most `max_faults` times and only within `fault_seconds` of being set;
after that the proxy passes everything through (the endpoint "comes back"). The server stops by itself
after `lifetime_seconds`, whatever the caller does. `set_fault` starts a new fault window.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

FaultKind = Literal[
    "none", "latency", "timeout", "http_429", "http_5xx", "drop", "malformed", "lag", "wrong_chain", "flip"
]
KINDS: tuple[str, ...] = (
    "none", "latency", "timeout", "http_429", "http_5xx", "drop", "malformed", "lag", "wrong_chain", "flip"
)


@dataclass(frozen=True)
class Fault:
    """One fault kind and its parameters. `every` = inject on every n-th matching request (1: all)."""

    kind: FaultKind = "none"
    latency_seconds: float = 0.0  # latency: added delay; timeout: how long the request is held
    lag_blocks: int = 0
    chain_id: int = 1
    every: int = 1
    methods: frozenset[str] | None = None  # only these JSON-RPC methods (None: every method)
    spare: frozenset[str] = frozenset()  # never these methods (e.g. the head poll, to fault a tick's reads only)

    def describe(self) -> str:
        extra = {
            "latency": f" {self.latency_seconds:g}s",
            "timeout": f" held {self.latency_seconds:g}s",
            "lag": f" {self.lag_blocks} blocks",
            "wrong_chain": f" id {self.chain_id}",
        }.get(self.kind, "")
        scope = "" if self.methods is None else " on " + ",".join(sorted(self.methods))
        scope += "" if not self.spare else " on every method but " + ", ".join(sorted(self.spare))
        rate = "" if self.every == 1 else f" every {self.every}th request"
        return f"{self.kind}{extra}{scope}{rate}"


@dataclass
class ProxyStats:
    requests: int = 0
    faulted: int = 0
    forwarded: int = 0
    by_method: Counter[str] = field(default_factory=Counter)
    faulted_by_method: Counter[str] = field(default_factory=Counter)


class FaultProxy:
    """A threaded HTTP server on 127.0.0.1 that forwards JSON-RPC to `upstream`, injecting `fault`."""

    def __init__(
        self,
        upstream: str,
        fault: Fault = Fault(),
        *,
        alternate: str | None = None,
        max_faults: int = 10_000,
        fault_seconds: float = 600.0,
        lifetime_seconds: float = 1800.0,
        upstream_timeout: float = 30.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if fault.kind not in KINDS:
            raise ValueError(f"fault.kind: unknown {fault.kind!r}")
        if fault.kind == "flip" and alternate is None:
            raise ValueError("fault 'flip' needs an alternate upstream")
        self.upstream = upstream
        self.alternate = alternate
        self.upstream_timeout = upstream_timeout
        self.lifetime_seconds = lifetime_seconds
        self.stats = ProxyStats()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._fault = fault
        self._max_faults = max_faults
        self._fault_seconds = fault_seconds
        self._fault_started = time.monotonic()
        self._matching = 0
        self._window_faults = 0
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime_seconds, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        """Idempotent; safe from any thread (also called by the lifetime timer)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._timer is not None and threading.current_thread() is not self._timer:
            self._timer.cancel()
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()

    @property
    def running(self) -> bool:
        return not self._stopped.is_set()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- the fault window ------------------------------------------------------------------------------------
    @property
    def fault(self) -> Fault:
        return self._fault

    def set_fault(self, fault: Fault, *, max_faults: int | None = None, fault_seconds: float | None = None) -> None:
        """Inject `fault` from now on (a new window: the counters restart)."""
        if fault.kind == "flip" and self.alternate is None:
            raise ValueError("fault 'flip' needs an alternate upstream")
        with self._lock:
            self._fault = fault
            self._max_faults = self._max_faults if max_faults is None else max_faults
            self._fault_seconds = self._fault_seconds if fault_seconds is None else fault_seconds
            self._fault_started = time.monotonic()
            self._matching = 0
            self._window_faults = 0

    def heal(self) -> None:
        self.set_fault(Fault())

    def active(self) -> bool:
        """Whether the current fault window is still open (faults left and time left)."""
        with self._lock:
            return self._window_open()

    def _window_open(self) -> bool:
        return (
            self._fault.kind != "none"
            and self._window_faults < self._max_faults
            and time.monotonic() - self._fault_started < self._fault_seconds
        )

    def _decide(self, method: str) -> Fault | None:
        with self._lock:
            self.stats.requests += 1
            self.stats.by_method[method] += 1
            fault = self._fault
            if not self._window_open() or (fault.methods is not None and method not in fault.methods):
                return None
            if method in fault.spare:
                return None
            self._matching += 1
            if (self._matching - 1) % max(fault.every, 1):
                return None
            self._window_faults += 1
            self.stats.faulted += 1
            self.stats.faulted_by_method[method] += 1
            return fault

    # --- forwarding ------------------------------------------------------------------------------------------
    def forward(self, body: bytes, upstream: str | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(  # noqa: S310 - loopback URL given by the test
            upstream or self.upstream, data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.upstream_timeout) as response:  # noqa: S310
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as err:
            return int(err.code), bytes(err.read())
        finally:
            with self._lock:
                self.stats.forwarded += 1

    def _upstream_call(self, method: str, params: list[Any]) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": method, "params": params}).encode()
        _, answer = self.forward(body)
        return json.loads(answer).get("result")

    def _lagging(self, payload: dict[str, Any], lag: int) -> bytes:
        head = int(str(self._upstream_call("eth_blockNumber", [])), 16)
        behind = max(head - lag, 0)
        method = payload.get("method")
        if method == "eth_blockNumber":
            return _answer(payload, hex(behind))
        params = [hex(behind) if p in ("latest", "pending") else p for p in payload.get("params") or []]
        for i, p in enumerate(params):  # an explicit block above the lagging head is unknown to this node
            explicit = isinstance(p, str) and p.startswith("0x") and len(p) <= 18 and method in _BLOCK_ARG
            if explicit and i == _BLOCK_ARG[str(method)] and int(str(p), 16) > behind:
                return _error(payload, -32000, "header not found")
        _, answer = self.forward(json.dumps({**payload, "params": params}).encode())
        return answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {}
                method = str(payload.get("method", "?")) if isinstance(payload, dict) else "batch"
                fault = proxy._decide(method)
                try:
                    self._serve(fault, body, payload)
                except (OSError, ValueError, urllib.error.URLError):
                    self.close_connection = True
                    self._abort()

            def _serve(self, fault: Fault | None, body: bytes, payload: Any) -> None:
                kind = "none" if fault is None else fault.kind
                if fault is not None and kind == "latency":
                    proxy._stopped.wait(fault.latency_seconds)
                if fault is not None and kind == "timeout":
                    proxy._stopped.wait(fault.latency_seconds or 30.0)
                    self.close_connection = True
                    self._abort()
                    return
                if kind == "drop":
                    self.close_connection = True
                    self._abort()
                    return
                if kind in ("http_429", "http_5xx"):
                    code = 429 if kind == "http_429" else 503
                    self._reply(code, b'{"error":"injected"}', extra={"Retry-After": "1"} if code == 429 else {})
                    return
                if kind == "malformed":
                    self._reply(200, b'{"jsonrpc":"2.0","id":1,"result":"0x1')
                    return
                if fault is not None and kind == "wrong_chain" and isinstance(payload, dict):
                    if payload.get("method") == "eth_chainId":
                        self._reply(200, _answer(payload, hex(fault.chain_id)))
                        return
                    if payload.get("method") == "net_version":
                        self._reply(200, _answer(payload, str(fault.chain_id)))
                        return
                if fault is not None and kind == "lag" and isinstance(payload, dict):
                    self._reply(200, proxy._lagging(payload, fault.lag_blocks))
                    return
                upstream = proxy.alternate if kind == "flip" else None
                status, answer = proxy.forward(body, upstream)
                self._reply(status, answer)

            def _reply(self, code: int, body: bytes, extra: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def _abort(self) -> None:
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


# block-number argument position for the methods a keeper reads at a block
_BLOCK_ARG = {"eth_call": 1, "eth_getBalance": 1, "eth_getTransactionCount": 1, "eth_getBlockByNumber": 0,
              "eth_getCode": 1, "eth_estimateGas": 1}


def _answer(payload: dict[str, Any], result: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": payload.get("id"), "result": result}).encode()


def _error(payload: dict[str, Any], code: int, message: str) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": payload.get("id"), "error": {"code": code, "message": message}}).encode()
