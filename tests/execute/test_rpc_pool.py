"""RpcPool: chain id check, retries with injected jitter, failover, definitive node errors not retried."""

from __future__ import annotations

import random
from typing import Any

import pytest

from keeper.errors import ConfigError, ReadError
from keeper.execute.chain import RpcChain, RpcError, RpcPool, TransportError
from keeper.execute.classify import SendError


class Scripted:
    def __init__(self, chain_id: int = 1, fail: int = 0, error: RpcError | None = None, status: int | None = None):
        self.chain_id, self.fail, self.error, self.status = chain_id, fail, error, status
        self.calls: list[str] = []

    def request(self, method: str, params: list[Any]) -> Any:
        self.calls.append(method)
        if method == "eth_chainId":
            return hex(self.chain_id)
        if self.fail > 0:
            self.fail -= 1
            raise TransportError(f"{method}: HTTP {self.status}" if self.status else f"{method}: Timeout", self.status)
        if self.error is not None:
            raise self.error
        return "0x10"


def pool(*transports: Scripted, **kw: Any) -> tuple[RpcPool, list[float]]:
    slept: list[float] = []
    made = RpcPool(list(transports), 1, rng=random.Random(7), sleep=slept.append, **kw)
    return made, slept


def test_retries_with_backoff_then_succeeds() -> None:
    flaky = Scripted(fail=2, status=503)
    p, slept = pool(flaky, retries=2, backoff_base=0.1)
    assert p.request("eth_blockNumber", []) == "0x10"
    assert len(slept) == 2 and 0.05 <= slept[0] <= 0.1 and 0.1 <= slept[1] <= 0.2
    rng = random.Random(7)  # the jitter is the injected RNG's
    assert slept == [0.05 + 0.05 * rng.random(), 0.1 + 0.1 * rng.random()]
    assert p.health[0].errors == 2 and p.health[0].consecutive_failures == 0


def test_fails_over_to_the_next_endpoint_before_retrying() -> None:
    dead, alive = Scripted(fail=100), Scripted()
    p, slept = pool(dead, alive, retries=2)
    assert p.request("eth_blockNumber", []) == "0x10"
    # one try on the dead endpoint, no backoff: the next endpoint answers within the same request
    assert dead.calls == ["eth_blockNumber"] and alive.calls == ["eth_blockNumber"] and slept == []
    # the dead one is now ranked last and not asked at all
    p.request("eth_blockNumber", [])
    assert dead.calls == ["eth_blockNumber"] and alive.calls == ["eth_blockNumber"] * 2


def test_rounds_over_every_endpoint_are_retried_with_backoff() -> None:
    a, b = Scripted(fail=1), Scripted(fail=1)
    p, slept = pool(a, b, retries=1)
    assert p.request("eth_blockNumber", []) == "0x10"
    assert a.calls == ["eth_blockNumber"] * 2 and b.calls == ["eth_blockNumber"] and len(slept) == 1


def test_all_endpoints_down_is_a_read_error() -> None:
    p, _ = pool(Scripted(fail=100), Scripted(fail=100), retries=1)
    with pytest.raises(ReadError, match="every endpoint failed"):
        p.request("eth_blockNumber", [])


def test_node_errors_are_definitive_and_not_retried() -> None:
    nonce_low = Scripted(error=RpcError(-32000, "nonce too low"))
    other = Scripted()
    p, slept = pool(nonce_low, other)
    with pytest.raises(SendError) as info:
        RpcChain(p).send_raw(b"\x01")
    assert info.value.outcome.kind == "nonce_too_low" and slept == [] and other.calls == []


def test_wrong_chain_endpoints_are_excluded_and_none_left_is_fatal() -> None:
    wrong, right = Scripted(chain_id=5), Scripted(chain_id=1)
    p, _ = pool(wrong, right)
    p.verify()
    assert [h.chain_id_ok for h in p.health] == [False, True]
    p.request("eth_blockNumber", [])
    assert "eth_blockNumber" not in wrong.calls
    only_wrong, _ = pool(Scripted(chain_id=5))
    with pytest.raises(ConfigError, match="chain id 1"):
        only_wrong.verify()


def test_head_lag_is_tracked() -> None:
    behind = Scripted()
    p, _ = pool(behind, Scripted())
    p.refresh_heads()
    assert [h.head for h in p.health] == [16, 16]


class Heads:
    """Answers eth_blockNumber from a script of heads (the last one repeats)."""

    def __init__(self, *heads: int) -> None:
        self.heads = list(heads)
        self.calls = 0

    def request(self, method: str, params: list[Any]) -> Any:
        self.calls += 1
        return hex(self.heads.pop(0) if len(self.heads) > 1 else self.heads[0])


def test_a_head_far_behind_the_others_is_not_trusted() -> None:
    """Answers that flip to another node (head near 0) or a lagging node: the next endpoint answers."""
    flipping, good = Heads(100, 2, 101), Heads(100)
    p, _ = pool(flipping, good, clock=lambda: 0.0)  # type: ignore[arg-type]  # fixed clock: no latency ranking
    assert p.request("eth_blockNumber", []) == hex(100)  # first answer: nothing to compare with
    assert p.request("eth_blockNumber", []) == hex(100)  # flipping said 2 (98 behind its own 100): good answers
    assert flipping.calls == 2 and good.calls == 1 and p.health[0].consecutive_failures == 1
    assert p.request("eth_blockNumber", []) == hex(100)  # the flipping endpoint now ranks last
    assert flipping.calls == 2 and good.calls == 2
    lagging, best = Heads(95), Heads(100)
    q, _ = pool(lagging, best, max_head_lag=3)  # type: ignore[arg-type]
    q.health[1].head = 100
    assert q.request("eth_blockNumber", []) == hex(100)
    assert lagging.calls == 1 and q.health[0].consecutive_failures == 1
    within, best2 = Heads(98), Heads(100)
    r, _ = pool(within, best2, max_head_lag=3)  # type: ignore[arg-type]
    r.health[1].head = 100
    assert r.request("eth_blockNumber", []) == hex(98)  # 2 behind: within the tolerated lag


def test_demoted_endpoints_rank_last_until_their_cooldown_ends() -> None:
    now = [0.0]
    a, b = Scripted(), Scripted()
    p = RpcPool([a, b], 1, sleep=lambda _: None, clock=lambda: now[0])
    p.demote(0, 30.0)
    p.request("eth_blockNumber", [])
    assert a.calls == [] and b.calls == ["eth_blockNumber"]
    now[0] = 31.0
    p.request("eth_blockNumber", [])
    assert a.calls == ["eth_blockNumber"]


def test_observer_sees_every_request_attempt_by_endpoint_name() -> None:
    """One call per attempt on one endpoint: (name, method, ok, seconds). A transport failure is not ok; a
    JSON-RPC error is the node's answer (ok); the clock is the pool's (injected)."""
    now = [0.0]

    def tick_clock() -> float:
        now[0] += 0.25
        return now[0]

    seen: list[tuple[str, str, bool, float]] = []
    dead, alive = Scripted(fail=1), Scripted(error=RpcError(3, "execution reverted"))
    p = RpcPool([dead, alive], 1, sleep=lambda _: None, clock=tick_clock, observer=lambda *a: seen.append(a))
    p.verify()
    assert seen == [("rpc0", "eth_chainId", True, 0.25), ("rpc1", "eth_chainId", True, 0.25)]
    seen.clear()
    with pytest.raises(RpcError):
        p.request("eth_call", [])
    assert seen == [("rpc0", "eth_call", False, 0.25), ("rpc1", "eth_call", True, 0.25)]
    seen.clear()
    alive.error = None
    p.refresh_heads()
    assert [(name, method, ok) for name, method, ok, _ in seen] == [
        ("rpc0", "eth_blockNumber", True),
        ("rpc1", "eth_blockNumber", True),
    ]


def test_an_observer_that_raises_never_breaks_a_request() -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("metrics backend down")

    p = RpcPool([Scripted()], 1, sleep=lambda _: None, observer=broken)
    assert p.request("eth_blockNumber", []) == "0x10"
