"""The operator endpoint on one port: `/metrics`, `/healthz` (liveness) and `/readyz` (readiness).

Custom handlers (the stock exporter answers every path with metrics). Liveness: the head watcher's
heartbeat is fresh. Readiness: every named check passes (chain reachable and in sync, signer ready,
leadership held); the body lists each check. Must not decide or send anything.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class Health:
    """Heartbeat and readiness checks, shared between the scheduler (writer) and the server (reader)."""

    def __init__(self, max_heartbeat_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_heartbeat_age = max_heartbeat_age
        self._clock = clock
        self._beat: float | None = None
        self._checks: dict[str, tuple[bool, str]] = {}
        self._lock = threading.Lock()

    def beat(self) -> None:
        with self._lock:
            self._beat = self._clock()

    def set_check(self, name: str, ok: bool, detail: str = "") -> None:
        with self._lock:
            self._checks[name] = (ok, detail)

    def live(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            age = None if self._beat is None else self._clock() - self._beat
        ok = age is not None and age <= self.max_heartbeat_age
        return ok, {"live": ok, "heartbeat_age_seconds": age, "max_age_seconds": self.max_heartbeat_age}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        live, _ = self.live()
        with self._lock:
            checks = {name: {"ok": ok, "detail": detail} for name, (ok, detail) in self._checks.items()}
        ok = live and bool(checks) and all(c["ok"] for c in checks.values())
        return ok, {"ready": ok, "live": live, "checks": checks}


def serve(registry: CollectorRegistry, health: Health, host: str, port: int) -> ThreadingHTTPServer:
    """Start the endpoint in a daemon thread; call `.shutdown()` then `.server_close()` to stop it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok, body = health.live() if path == "/healthz" else health.ready()
                self._send(200 if ok else 503, json.dumps(body).encode(), "application/json")
            else:
                self._send(404, b'{"error": "not found"}', "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # scrapes are not worth a log line each

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="keeper-http", daemon=True).start()
    return server
