"""The operator endpoint: metrics on /metrics, liveness from the heartbeat, readiness from named checks."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from keeper.daemon.http import Health, serve
from keeper.daemon.metrics import Metrics
from keeper.devnet.anvil import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def endpoint() -> Iterator[tuple[str, Health, Clock, Metrics]]:
    clock = Clock()
    health = Health(max_heartbeat_age=30, clock=clock)
    metrics = Metrics()
    port = free_port()
    server = serve(metrics.registry, health, "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}", health, clock, metrics
    finally:
        server.shutdown()
        server.server_close()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_metrics_have_keeper_prefix(endpoint: tuple[str, Health, Clock, Metrics]) -> None:
    url, _, _, metrics = endpoint
    metrics.ticks.labels(result="ok").inc()
    status, body = get(url + "/metrics")
    assert status == 200
    text = body.decode()
    assert 'keeper_ticks_total{result="ok"} 1.0' in text
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    assert names and all(n.startswith("keeper_") for n in names), names


def test_liveness_follows_heartbeat(endpoint: tuple[str, Health, Clock, Metrics]) -> None:
    url, health, clock, _ = endpoint
    assert get(url + "/healthz")[0] == 503  # no heartbeat yet
    health.beat()
    assert get(url + "/healthz")[0] == 200
    clock.now += 30
    assert get(url + "/healthz")[0] == 200  # exactly at the bound
    clock.now += 0.5
    status, body = get(url + "/healthz")
    assert status == 503 and json.loads(body)["heartbeat_age_seconds"] == 30.5


def test_readiness_needs_every_check(endpoint: tuple[str, Health, Clock, Metrics]) -> None:
    url, health, _, _ = endpoint
    health.beat()
    assert get(url + "/readyz")[0] == 503  # no checks registered: not ready
    health.set_check("chain", True, "head 12")
    health.set_check("leader", False, "standby: lease held by other")
    status, body = get(url + "/readyz")
    assert status == 503
    assert json.loads(body)["checks"]["leader"] == {"ok": False, "detail": "standby: lease held by other"}
    health.set_check("leader", True)
    assert get(url + "/readyz")[0] == 200
    assert get(url + "/other")[0] == 404
