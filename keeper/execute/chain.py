"""The chain port: the few reads and the one write the pipeline needs, and its web3 adapter.

`Chain` is the port. `RpcChain` implements it over an `RpcPool` of endpoints (web3 HTTPProvider transports)
with health tracking (chain id verified at start, head lag, latency, error rate), timeouts, retries with
exponential backoff and injected jitter, failover, and an optional private send route. `FakeChain`
(keeper.execute.fakes) is the in-memory fake.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from keeper.errors import ConfigError, ReadError
from keeper.execute.classify import SendError, classify_send_error
from keeper.execute.gas import FeeHistory

Route = Literal["public", "private"]
BlockTag = int | Literal["latest", "pending", "finalized", "safe", "earliest"]


@dataclass(frozen=True)
class Block:
    number: int
    hash: str
    base_fee: int | None


@dataclass(frozen=True)
class Log:
    address: str
    topics: tuple[str, ...]


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    block_number: int
    block_hash: str
    status: int
    logs: tuple[Log, ...] = ()
    gas_used: int | None = None


@dataclass(frozen=True)
class CallRequest:
    sender: str
    to: str
    data: bytes = b""
    value: int = 0


@dataclass(frozen=True)
class Simulation:
    """eth_call + eth_estimateGas at one block: ok with a gas estimate, or the revert data."""

    ok: bool
    gas: int | None = None
    revert_data: bytes | None = None
    message: str = ""


class Chain(Protocol):
    @property
    def has_private_route(self) -> bool: ...

    def chain_id(self) -> int: ...

    def block(self, tag: BlockTag) -> Block | None: ...

    def nonce(self, address: str, tag: BlockTag) -> int: ...

    def fee_history(self, blocks: int, percentiles: Sequence[float]) -> FeeHistory | None:
        """None when the node has no EIP-1559 fee history (legacy chain)."""
        ...

    def gas_price(self) -> int: ...

    def simulate(self, call: CallRequest, block: int) -> Simulation: ...

    def send_raw(self, raw: bytes, route: Route = "public") -> str:
        """The transaction hash; SendError (classified) when a node refuses it."""
        ...

    def receipt(self, tx_hash: str) -> Receipt | None: ...

    def knows(self, tx_hash: str) -> bool:
        """Whether the (public) node has the transaction, pending or mined."""
        ...


# --- transport ------------------------------------------------------------------------------------------------


class RpcError(Exception):
    """The node answered with a JSON-RPC error (a definitive answer, not a transport failure)."""

    def __init__(self, code: int | None, message: str, data: Any = None) -> None:
        super().__init__(f"json-rpc error {code}: {message[:300]}")
        self.code = code
        self.message = message
        self.data = data


class TransportError(Exception):
    """No usable answer: timeout, connection refused, HTTP 5xx/429, malformed body."""

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class Transport(Protocol):
    def request(self, method: str, params: list[Any]) -> Any: ...


_CREDENTIALS = re.compile(r"(://)([^/@]+@)")


def redact_url(url: str) -> str:
    """Endpoint URLs often carry API keys: keep scheme and host only."""
    no_userinfo = _CREDENTIALS.sub(r"\1", url)
    match = re.match(r"^([a-z]+://[^/?#]+)", no_userinfo)
    return match.group(1) if match else "<endpoint>"


class Web3Transport:
    """JSON-RPC over web3's HTTPProvider, with web3's own retries disabled (the pool retries)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        from web3.providers import HTTPProvider

        self._provider = HTTPProvider(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
        self.display = redact_url(url)

    def request(self, method: str, params: list[Any]) -> Any:
        import requests

        try:
            answer: Any = self._provider.make_request(method, params)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            raise TransportError(f"{method}: HTTP {status}", status) from None
        except (requests.RequestException, OSError, ValueError) as exc:
            raise TransportError(f"{method}: {exc.__class__.__name__}") from None
        if not isinstance(answer, dict):
            raise TransportError(f"{method}: malformed answer")
        if answer.get("error"):
            error = answer["error"]
            if isinstance(error, dict):
                raise RpcError(error.get("code"), str(error.get("message", "")), error.get("data"))
            raise RpcError(None, str(error))
        return answer.get("result")

    def __repr__(self) -> str:
        return f"Web3Transport({self.display})"


# --- health and failover (pure parts first) -------------------------------------------------------------------


def backoff_delay(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random (jitter in [0, 1))."""
    ceiling = min(cap, base * float(1 << attempt))
    return ceiling / 2 + ceiling / 2 * jitter


@dataclass
class EndpointHealth:
    name: str
    requests: int = 0
    errors: int = 0
    latency_ewma: float = 0.0
    head: int | None = None
    chain_id_ok: bool | None = None
    consecutive_failures: int = 0
    cooling_until: float = 0.0  # monotonic; set by `RpcPool.demote` (the daemon's read path saw it fail)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def record(self, ok: bool, latency: float) -> None:
        self.requests += 1
        if ok:
            self.consecutive_failures = 0
            self.latency_ewma = latency if self.latency_ewma == 0 else 0.8 * self.latency_ewma + 0.2 * latency
        else:
            self.errors += 1
            self.consecutive_failures += 1


def rank(healths: Sequence[EndpointHealth], max_lag: int, now: float = 0.0) -> list[int]:
    """Endpoint indexes, best first: not cooling down, within `max_lag` of the best head, fewest recent
    failures, lowest error rate, lowest latency. Endpoints on the wrong chain are excluded."""
    heads = [h.head for h in healths if h.head is not None]
    best = max(heads) if heads else None

    def key(i: int) -> tuple[bool, bool, int, float, float]:
        h = healths[i]
        lagging = best is not None and h.head is not None and best - h.head > max_lag
        return (h.cooling_until > now, lagging, min(h.consecutive_failures, 3), round(h.error_rate, 1), h.latency_ewma)

    return sorted((i for i, h in enumerate(healths) if h.chain_id_ok is not False), key=key)


Observer = Callable[[str, str, bool, float], None]


@dataclass
class RpcPool:
    """Several endpoints for one chain. `request` tries them best-first, retrying transport failures.

    `observer(endpoint, method, ok, seconds)`, when set, is called once per request attempt on one endpoint
    (`request`, `verify`, `refresh_heads`): `endpoint` is the endpoint's name ("rpc0", "rpc1", … or the names
    given), never its URL; `ok` is False for a transport failure (timeout, refused, HTTP 5xx/429, malformed
    answer) or an untrusted lagging head, True when the endpoint answered, a JSON-RPC error included (that is
    the node's definitive answer, e.g. a revert, not an endpoint fault); `seconds` is the wall time of the
    attempt. Meant for metrics (requests / errors / latency per endpoint); an observer that raises is ignored.
    """

    transports: list[Transport]
    chain_id: int
    names: list[str] | None = None
    retries: int = 2
    backoff_base: float = 0.05
    backoff_cap: float = 2.0
    max_head_lag: int = 3
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    observer: Observer | None = None
    health: list[EndpointHealth] = field(init=False)

    def __post_init__(self) -> None:
        if not self.transports:
            raise ConfigError("rpc: at least one endpoint is required")
        names = self.names or [f"rpc{i}" for i in range(len(self.transports))]
        self.health = [EndpointHealth(name) for name in names]

    @classmethod
    def from_urls(cls, urls: Sequence[str], chain_id: int, *, timeout: float = 10.0, **kw: Any) -> RpcPool:
        return cls([Web3Transport(u, timeout) for u in urls], chain_id, **kw)

    def _settle(self, index: int, method: str, ok: bool, seconds: float) -> None:
        """Record one attempt's result in the endpoint's health and tell the observer."""
        self.health[index].record(ok, seconds)
        self._observe(index, method, ok, seconds)

    def _observe(self, index: int, method: str, ok: bool, seconds: float) -> None:
        if self.observer is None:
            return
        try:
            self.observer(self.health[index].name, method, ok, seconds)
        except Exception:  # metrics must never break a read or a send
            return

    def verify(self) -> None:
        """Check every endpoint's chain id; wrong-chain endpoints are excluded, none left is fatal."""
        for i, transport in enumerate(self.transports):
            started = self.clock()
            try:
                answer = int(str(transport.request("eth_chainId", [])), 16)
            except (TransportError, RpcError, ValueError):
                self.health[i].record(False, 0.0)
                self._observe(i, "eth_chainId", False, self.clock() - started)
                continue
            self._observe(i, "eth_chainId", True, self.clock() - started)
            self.health[i].chain_id_ok = answer == self.chain_id
        if not any(h.chain_id_ok for h in self.health):
            raise ConfigError(f"rpc: no endpoint answered chain id {self.chain_id}")

    def refresh_heads(self) -> None:
        for i, transport in enumerate(self.transports):
            if self.health[i].chain_id_ok is False:
                continue
            started = self.clock()
            try:
                self.health[i].head = int(str(transport.request("eth_blockNumber", [])), 16)
            except (TransportError, RpcError, ValueError):
                self.health[i].record(False, 0.0)
                self._observe(i, "eth_blockNumber", False, self.clock() - started)
            else:
                self._settle(i, "eth_blockNumber", True, self.clock() - started)

    def demote(self, index: int, seconds: float) -> None:
        """Rank endpoint `index` last for `seconds` (another component saw it fail or lag)."""
        if 0 <= index < len(self.health):
            self.health[index].cooling_until = self.clock() + seconds

    def _head_problem(self, index: int, result: Any) -> str | None:
        """An eth_blockNumber answer more than max_head_lag behind another endpoint's latest head (a lagging
        node, or answers from another node) is not trusted: the next endpoint is asked instead."""
        try:
            head = int(str(result), 16)
        except ValueError:
            return "eth_blockNumber: malformed answer"
        others = [h.head for i, h in enumerate(self.health) if i != index and h.head is not None]
        own = self.health[index].head
        self.health[index].head = head
        best = max([*others, *([own] if own is not None else [])], default=None)
        if best is not None and best - head > self.max_head_lag:
            return f"eth_blockNumber: head {head} is {best - head} blocks behind the latest seen ({best})"
        return None

    def request(self, method: str, params: list[Any]) -> Any:
        """The first good answer. RpcError (the node's definitive answer) propagates at once; a transport
        failure moves on to the next endpoint at once (failover first: one timeout, not several, before
        another node answers); after every endpoint failed, the round is retried with backoff, up to
        `retries` times; ReadError when all rounds fail."""
        order = rank(self.health, self.max_head_lag, self.clock()) or list(range(len(self.transports)))
        last = "no endpoint"
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(backoff_delay(attempt - 1, self.backoff_base, self.backoff_cap, self.rng.random()))
            for index in order:
                transport = self.transports[index]
                started = self.clock()
                try:
                    result = transport.request(method, params)
                except TransportError as exc:
                    self._settle(index, method, False, self.clock() - started)
                    last = str(exc)
                    continue
                except RpcError:
                    self._settle(index, method, True, self.clock() - started)
                    raise
                elapsed = self.clock() - started
                problem = self._head_problem(index, result) if method == "eth_blockNumber" else None
                self._settle(index, method, problem is None, elapsed)
                if problem is not None:
                    last = problem
                    continue
                return result
        raise ReadError(f"{method}: every endpoint failed (last: {last})")


# --- the adapter ----------------------------------------------------------------------------------------------


def _tag(tag: BlockTag) -> str:
    return hex(tag) if isinstance(tag, int) else tag


def _int(value: Any) -> int:
    return int(str(value), 16) if isinstance(value, str) else int(value)


def _revert_data(data: Any) -> bytes | None:
    if isinstance(data, dict):  # some nodes nest it: {"data": "0x..."} or {"originalError": {...}}
        inner = data.get("data") or (data.get("originalError") or {}).get("data")
        return _revert_data(inner)
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    return None


def _is_revert(exc: RpcError) -> bool:
    return exc.code == 3 or "revert" in exc.message.lower()


class RpcChain:
    """The `Chain` port over an RpcPool (reads) and an optional private send pool."""

    def __init__(self, pool: RpcPool, private: RpcPool | None = None) -> None:
        self.pool = pool
        self.private = private

    @property
    def has_private_route(self) -> bool:
        return self.private is not None

    def chain_id(self) -> int:
        return _int(self.pool.request("eth_chainId", []))

    def block(self, tag: BlockTag) -> Block | None:
        try:
            raw = self.pool.request("eth_getBlockByNumber", [_tag(tag), False])
        except RpcError as exc:
            if tag in ("finalized", "safe"):
                return None  # node without finality tags
            raise ReadError(f"eth_getBlockByNumber({tag}): {exc.message[:200]}") from None
        if raw is None:
            return None
        base = raw.get("baseFeePerGas")
        return Block(_int(raw["number"]), raw["hash"], None if base is None else _int(base))

    def nonce(self, address: str, tag: BlockTag) -> int:
        try:
            return _int(self.pool.request("eth_getTransactionCount", [address, _tag(tag)]))
        except RpcError as exc:
            raise ReadError(f"eth_getTransactionCount: {exc.message[:200]}") from None

    def fee_history(self, blocks: int, percentiles: Sequence[float]) -> FeeHistory | None:
        try:
            raw = self.pool.request("eth_feeHistory", [hex(blocks), "latest", list(percentiles)])
        except RpcError:
            return None
        base = raw.get("baseFeePerGas") if raw else None
        if not base or all(_int(b) == 0 for b in base):
            return None
        rewards = tuple(tuple(_int(x) for x in row) for row in (raw.get("reward") or []))
        return FeeHistory(tuple(_int(b) for b in base), rewards, tuple(percentiles))

    def gas_price(self) -> int:
        try:
            return _int(self.pool.request("eth_gasPrice", []))
        except RpcError as exc:
            raise ReadError(f"eth_gasPrice: {exc.message[:200]}") from None

    def simulate(self, call: CallRequest, block: int) -> Simulation:
        tx = {"from": call.sender, "to": call.to, "data": "0x" + call.data.hex(), "value": hex(call.value)}
        try:
            self.pool.request("eth_call", [tx, hex(block)])
            gas = _int(self.pool.request("eth_estimateGas", [tx, hex(block)]))
        except RpcError as exc:
            if _is_revert(exc):
                return Simulation(False, None, _revert_data(exc.data) or b"", exc.message[:300])
            raise ReadError(f"simulation: {exc.message[:200]}") from None
        return Simulation(True, gas)

    def send_raw(self, raw: bytes, route: Route = "public") -> str:
        pool = self.private if route == "private" and self.private is not None else self.pool
        try:
            return str(pool.request("eth_sendRawTransaction", ["0x" + raw.hex()]))
        except RpcError as exc:
            raise SendError(classify_send_error(exc.message, exc.code)) from None
        except ReadError as exc:
            raise SendError(classify_send_error(str(exc))) from None

    def receipt(self, tx_hash: str) -> Receipt | None:
        try:
            raw = self.pool.request("eth_getTransactionReceipt", [tx_hash])
        except RpcError as exc:
            raise ReadError(f"eth_getTransactionReceipt: {exc.message[:200]}") from None
        if raw is None or raw.get("blockNumber") is None:
            return None
        logs = tuple(Log(str(lg["address"]), tuple(str(t) for t in lg.get("topics", []))) for lg in raw["logs"])
        gas_used = _int(raw["gasUsed"]) if raw.get("gasUsed") is not None else None
        return Receipt(tx_hash, _int(raw["blockNumber"]), raw["blockHash"], _int(raw["status"]), logs, gas_used)

    def knows(self, tx_hash: str) -> bool:
        try:
            return self.pool.request("eth_getTransactionByHash", [tx_hash]) is not None
        except RpcError as exc:
            raise ReadError(f"eth_getTransactionByHash: {exc.message[:200]}") from None


def connect(urls: Sequence[str], chain_id: int, *, private_url: str | None = None, **kw: Any) -> RpcChain:
    """Build and verify an RpcChain (ConfigError if no endpoint is on `chain_id`). Keyword arguments go to both
    pools (e.g. `timeout`, `observer`: the private pool's endpoint is named "private")."""
    pool = RpcPool.from_urls(urls, chain_id, **kw)
    pool.verify()
    pool.refresh_heads()
    private = RpcPool.from_urls([private_url], chain_id, names=["private"], **kw) if private_url else None
    return RpcChain(pool, private)
