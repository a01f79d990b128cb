"""The read path's endpoint choice: failover with cooldown, return to the preferred endpoint, head sanity
(a head far behind the others' is failed over), chain-id verification and the head probe.

The selection rules are pure (`pick`, `head_problem`); `Endpoints` is exercised against real nodes: the
session anvil, a second anvil (another node on the same chain id, its head near 0) and a closed port.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from keeper.daemon.endpoints import Endpoints, head_problem, pick
from keeper.daemon.metrics import Metrics
from keeper.devnet.anvil import Anvil, free_port, rpc
from keeper.errors import ConfigError


def test_pick_prefers_the_lowest_index_not_cooling() -> None:
    assert pick([0.0, 0.0], now=5.0) == 0
    assert pick([10.0, 0.0], now=5.0) == 1
    assert pick([10.0, 0.0], now=10.0) == 0  # cooldown over: back to the preferred one
    assert pick([10.0, 8.0, 9.0], now=5.0) == 1  # all cooling: the one free soonest


def test_head_problem_compares_with_the_latest_heads() -> None:
    assert head_problem(100, [None, None], 3) is None
    assert head_problem(97, [100, None], 3) is None  # within the tolerated lag
    assert "4 blocks behind" in (head_problem(96, [100, 99], 3) or "")
    assert head_problem(2, [286, 287], 3) is not None  # answers from another node
    # every endpoint agrees on a lower head (a rewind): accepted once they all report it
    assert head_problem(50, [50, 50], 3) is None


def _sample(m: Metrics, name: str, **labels: str) -> float:
    return m.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def other() -> Iterator[Anvil]:
    with Anvil.start() as node:
        yield node


@pytest.mark.anvil
def test_a_node_answering_far_behind_is_failed_over_and_cooled_down(anvil: Anvil, other: Anvil) -> None:
    for _ in range(10):
        rpc(anvil.url, "evm_mine")
    now = [0.0]
    m = Metrics()
    e = Endpoints([anvil.url, other.url], 2.0, m, max_lag=3, cooldown=30.0, clock=lambda: now[0])
    e.verify(31337)
    main_head = int(e.w3().eth.block_number)
    assert e.check_head(main_head) is None and e.current == 0
    e.current = 1  # as if rpc0 had failed once: the other node (head near 0) answers now
    problem = e.check_head(int(e.w3().eth.block_number))
    assert problem is not None and "behind" in problem
    e.failed(problem)
    assert e.current == 0 and e.cooling_until[1] == 30.0
    assert _sample(m, "keeper_rpc_errors_total", endpoint="rpc1") == 1
    # rpc0 cools down after a failure; rpc1 serves; rpc0 is preferred again once its cooldown ends
    e.current = 0
    e.failed("timeout")
    assert e.current == 1 and e.cooling_until[0] == 30.0
    e.prefer()
    assert e.current == 1
    now[0] = 31.0
    e.prefer()
    assert e.current == 0


@pytest.mark.anvil
def test_wrong_chain_endpoints_are_never_used_and_none_right_is_fatal(anvil: Anvil) -> None:
    with Anvil.start(chain_id=1) as mainnet_id:
        e = Endpoints([mainnet_id.url, anvil.url], 2.0, Metrics())
        e.verify(31337)
        assert e.chain_ok == [False, True] and e.current == 1
        e.failed("some failure")  # nowhere else to go but never to the wrong chain
        assert e.current == 1
        with pytest.raises(ConfigError, match=r"chain\.rpc_urls: no endpoint is on chain 31337"):
            Endpoints([mainnet_id.url], 2.0, Metrics()).verify(31337)


@pytest.mark.anvil
def test_the_probe_learns_every_head_and_exports_the_lag(anvil: Anvil, other: Anvil) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    m = Metrics()
    e = Endpoints([dead, anvil.url, other.url], 1.0, m)
    e.verify(31337)
    assert e.chain_ok == [None, True, True] and e.current == 0  # unknown is not excluded
    e.probe_once(31337)
    main_head = int(str(rpc(anvil.url, "eth_blockNumber")), 16)
    other_head = int(str(rpc(other.url, "eth_blockNumber")), 16)
    assert e.heads == [None, main_head, other_head]
    assert _sample(m, "keeper_rpc_head_lag_blocks", endpoint="rpc2") == max(main_head, other_head) - other_head
    assert _sample(m, "keeper_rpc_head_lag_blocks", endpoint="rpc1") == max(main_head, other_head) - main_head


@pytest.mark.anvil
def test_an_endpoint_that_turns_to_another_chain_is_left_until_it_returns(anvil: Anvil) -> None:
    from keeper.faults.proxy import Fault, FaultProxy

    now = [0.0]
    with FaultProxy(anvil.url, lifetime_seconds=60) as proxy:
        m = Metrics()
        e = Endpoints([proxy.url, anvil.url], 2.0, m, cooldown=10.0, clock=lambda: now[0])
        e.verify(31337)
        assert e.current == 0
        proxy.set_fault(Fault("wrong_chain", chain_id=1), fault_seconds=60)
        e.probe_once(31337)
        assert e.chain_ok == [False, True] and e.current == 1
        assert _sample(m, "keeper_rpc_errors_total", endpoint="rpc0") == 1
        now[0] = 100.0
        e.prefer()
        assert e.current == 1  # excluded for as long as it answers another chain id
        proxy.heal()
        e.probe_once(31337)
        assert e.chain_ok == [True, True] and e.cooling_until[0] == 110.0
        now[0] = 111.0
        e.prefer()
        assert e.current == 0
