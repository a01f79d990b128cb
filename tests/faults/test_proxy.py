"""The fault proxy's method scoping against a stub upstream on loopback (no node needed)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from keeper.faults.proxy import Fault, FaultProxy


class _Upstream(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps({"jsonrpc": "2.0", "id": payload["id"], "result": "0x10"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def call(url: str, method: str) -> int:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_spared_methods_pass_through_while_the_others_fail(upstream: str) -> None:
    fault = Fault("http_5xx", spare=frozenset({"eth_blockNumber", "eth_chainId"}))
    with FaultProxy(upstream, fault, lifetime_seconds=30) as proxy:
        codes = {m: call(proxy.url, m) for m in ("eth_blockNumber", "eth_chainId", "eth_call", "eth_getLogs")}
        assert codes == {"eth_blockNumber": 200, "eth_chainId": 200, "eth_call": 503, "eth_getLogs": 503}
        assert proxy.stats.faulted == 2 and dict(proxy.stats.faulted_by_method) == {"eth_call": 1, "eth_getLogs": 1}
    assert "every method but eth_blockNumber, eth_chainId" in fault.describe()


def test_methods_limit_the_fault_to_those_methods(upstream: str) -> None:
    with FaultProxy(upstream, Fault("http_429", methods=frozenset({"eth_call"})), lifetime_seconds=30) as proxy:
        assert [call(proxy.url, m) for m in ("eth_call", "eth_blockNumber")] == [429, 200]
