"""The read endpoints: which RPC node the daemon trusts for the head and the snapshot, and when to fail over.

Owns endpoint choice for the read path: one Web3 client per configured URL (web3's own retries off: a
timed-out request fails over at once instead of being retried for several timeouts), a cooldown for an
endpoint that failed, a return to the preferred (lower-index) endpoint once its cooldown has passed, and
head sanity: an endpoint whose head is more than `max_lag` blocks behind the highest head seen on any
endpoint (a lagging node, or answers that come from another node) is treated as failed. A background
probe asks every endpoint for its head every `probe_seconds`, so a lagging primary is noticed even when
it is the only endpoint being read. `on_demote(index, seconds)` lets the send path avoid the same endpoint.

Must not read contracts or decide anything; the pure selection rules (`pick`, `head_problem`) are
separate from the threads and clients so they are tested without a node.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from web3 import Web3
from web3.providers import HTTPProvider

from keeper import log
from keeper.daemon.metrics import Metrics
from keeper.errors import ConfigError

_log = log.get(__name__)


def pick(cooling_until: Sequence[float], now: float) -> int:
    """The preferred endpoint: the lowest index not cooling down; if all are, the one free soonest."""
    for i, until in enumerate(cooling_until):
        if until <= now:
            return i
    return min(range(len(cooling_until)), key=lambda i: (cooling_until[i], i))


def head_problem(head: int, latest: Sequence[int | None], max_lag: int) -> str | None:
    """Why `head` cannot be trusted, given each endpoint's latest head (this one's included), or None.

    Compared with the latest heads rather than the highest ever seen: when every endpoint agrees on a
    lower head (a deep reorg, a devnet rewind) the new head is accepted after one poll per endpoint.
    """
    known = [h for h in latest if h is not None]
    best = max(known) if known else None
    if best is not None and best - head > max_lag:
        return f"head {head} is {best - head} blocks behind the latest seen ({best})"
    return None


@dataclass
class Endpoints:
    """The read endpoints in order of preference, with failover, cooldown and head sanity."""

    urls: list[str]
    timeout: float
    metrics: Metrics
    max_lag: int = 3
    cooldown: float = 30.0
    probe_seconds: float = 5.0
    on_demote: Callable[[int, float], None] | None = None
    clock: Callable[[], float] = time.monotonic
    current: int = 0
    clients: list[Web3] = field(default_factory=list)
    heads: list[int | None] = field(default_factory=list)
    cooling_until: list[float] = field(default_factory=list)
    chain_ok: list[bool | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clients = [
            Web3(HTTPProvider(u, request_kwargs={"timeout": self.timeout}, exception_retry_configuration=None))
            for u in self.urls
        ]
        self.heads = [None] * len(self.urls)
        self.cooling_until = [0.0] * len(self.urls)
        self.chain_ok = [None] * len(self.urls)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._probe: threading.Thread | None = None

    @property
    def name(self) -> str:
        return f"rpc{self.current}"

    def w3(self) -> Web3:
        return self.clients[self.current]

    def prefer(self) -> None:
        """Move back to a preferred endpoint whose cooldown has passed (called before each head read)."""
        with self._lock:
            now = self.clock()
            best = pick(self.cooling_until, now)
            if best < self.current and self.cooling_until[best] <= now:
                _log.info("returning to a preferred endpoint", endpoint=f"rpc{best}", previous=self.name)
                self.current = best

    def failed(self, reason: str = "read failed") -> None:
        """The current endpoint failed: count it, cool it down, move to the next preferred one."""
        with self._lock:
            index = self.current
            self.metrics.rpc_errors.labels(endpoint=f"rpc{index}").inc()
            if len(self.clients) == 1:
                return  # nowhere to go: the next poll retries the same endpoint
            self.cooling_until[index] = self.clock() + self.cooldown
            self.current = pick(self.cooling_until, self.clock())
            if self.current == index:  # every endpoint is cooling: try another one rather than the same
                others = [j for j in range(len(self.clients)) if j != index and self.chain_ok[j] is not False]
                self.current = min(others, key=lambda j: (j - index) % len(self.clients), default=index)
        _log.warning("endpoint failed; failing over", endpoint=f"rpc{index}", to=self.name, reason=reason[:200])
        if self.on_demote is not None:
            self.on_demote(index, self.cooldown)

    def check_head(self, head: int) -> str | None:
        """Record the current endpoint's head; the reason it cannot be trusted, or None."""
        with self._lock:
            problem = head_problem(head, self.heads, self.max_lag)
            self.heads[self.current] = head
            return problem

    def verify(self, chain_id: int) -> None:
        """Check each endpoint's chain id: a wrong one is never used again; none right is fatal.

        An endpoint that does not answer stays unknown (the probe checks it later)."""
        for i in range(len(self.clients)):
            self._verify_one(i, chain_id)
        if all(ok is False for ok in self.chain_ok):
            raise ConfigError(f"chain.rpc_urls: no endpoint is on chain {chain_id}")
        with self._lock:
            self.current = pick(self.cooling_until, self.clock())

    def _verify_one(self, index: int, chain_id: int) -> None:
        try:
            answer = int(self.clients[index].eth.chain_id)
        except Exception:
            return
        ok = answer == chain_id
        with self._lock:
            was = self.chain_ok[index]
            self.chain_ok[index] = ok
            if not ok:
                self.cooling_until[index] = math.inf
            elif was is False:  # back on the right chain: usable again after a cooldown
                self.cooling_until[index] = self.clock() + self.cooldown
        if not ok and was is not False:
            _log.error("endpoint is on another chain; not used while it is", endpoint=f"rpc{index}", chain_id=answer,
                       expected=chain_id)
        elif ok and was is False:
            _log.warning("endpoint is back on the right chain", endpoint=f"rpc{index}")

    def _exclude_if_current(self, index: int) -> None:
        with self._lock:
            if self.current != index:
                return
            self.metrics.rpc_errors.labels(endpoint=f"rpc{index}").inc()
            others = [j for j in range(len(self.clients)) if self.chain_ok[j] is not False]
            self.current = min(others, default=index)
        if self.on_demote is not None:
            self.on_demote(index, math.inf)

    # --- the probe thread ----------------------------------------------------------------------------------
    def probe_once(self, chain_id: int | None = None) -> None:
        """Ask every endpoint for its head (each with its own timeout) and export each one's lag."""
        for i, client in enumerate(self.clients):
            if self._stop.is_set():
                return
            if chain_id is not None:  # re-checked every probe: a load balancer may start routing elsewhere
                self._verify_one(i, chain_id)
                if self.chain_ok[i] is False:
                    self._exclude_if_current(i)
                    continue
            try:
                head = int(client.eth.block_number)
            except Exception as exc:  # a failing endpoint shows in the read path; the probe only learns heads
                _log.debug("head probe: no answer", endpoint=f"rpc{i}", error=exc.__class__.__name__)
                continue
            with self._lock:
                self.heads[i] = head
        with self._lock:
            known = [h for h in self.heads if h is not None]
            lags = [(i, max(known) - h) for i, h in enumerate(self.heads) if h is not None]
        for i, lag in lags:
            self.metrics.rpc_head_lag.labels(endpoint=f"rpc{i}").set(lag)

    def start_probe(self, chain_id: int | None = None) -> None:
        if len(self.clients) < 2 or self._probe is not None:
            return
        self._probe = threading.Thread(target=self._loop, args=(chain_id,), name="keeper-head-probe", daemon=True)
        self._probe.start()

    def _loop(self, chain_id: int | None) -> None:
        while not self._stop.wait(self.probe_seconds):
            try:
                self.probe_once(chain_id)
            except Exception as exc:  # never let the probe die silently
                _log.warning("head probe failed", error=f"{exc.__class__.__name__}: {exc}"[:200])

    def stop_probe(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._probe is not None and self._probe.is_alive():
            self._probe.join(timeout)
