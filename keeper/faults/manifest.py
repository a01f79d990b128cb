"""The expected scenarios of the reliability suite: every row RELIABILITY.md must show, and the test that writes it.

The report compares the result rows with this list, so a scenario whose test failed before recording, was
skipped (no PostgreSQL, a slow scenario outside `make faults`) or never ran is listed as such instead of
vanishing from the table. The `record` fixture uses it to write a `fail` (or `skipped`) row for a test that
ended without recording its own. `tests/faults/test_manifest.py` checks it against the collected tests.

Owns the list only: no I/O, no pytest.
"""

from __future__ import annotations

from dataclasses import dataclass

KILL_CHECKPOINTS = ("planned", "simulated", "nonce_reserved", "signed", "sent", "broadcast", "mined", "confirmed")
# the daemon-level crash cycles: every journal write of a plain rebalance, its finality included
DAEMON_KILL_CHECKPOINTS = (*KILL_CHECKPOINTS, "finalized")
# the pipeline drill (tests/execute/test_kill_drill.py): the plain checkpoints and three on a disturbed chain, on
# SQLite and PostgreSQL; the PostgreSQL ones outside DRILL_PG_FAST are slow
DRILL_CHECKPOINTS = (*KILL_CHECKPOINTS, "replacement_signed", "cancel_signed", "reorged")
DRILL_PG_FAST = ("signed", "sent", "replacement_signed", "cancel_signed", "reorged")
RPC_FAULTS = ("latency", "timeout", "http_429", "http_5xx", "drop", "malformed", "lag", "wrong_chain")
ORACLE_FAULTS = ("stale", "zero", "negative", "divergence")
SESSION = "session"  # the `test` of a row written by a session hook, not by one test


@dataclass(frozen=True)
class Scenario:
    id: str  # the row's scenario id
    test: str  # the pytest node id (relative to the repository) that records it, or SESSION
    slow: bool  # deselected by `make test`, run by `make faults`
    injected: str  # a short description, used when the test left no row of its own
    must_hold: str
    needs: str = ""  # an external service the test skips without (e.g. "PostgreSQL")


_F = "tests/faults/"
_AUDIT = "zero duplicate executions, zero lost intents, zero nonce gaps (journal vs chain)"
_DRILL = ("tests/execute/test_kill_drill.py::test_kill_at_checkpoint_then_restart_takes_effect_exactly_once"
          "[{}-{}]")
_CYCLES = _F + "test_daemon_crash_cycles.py::test_daemon_killed_at_checkpoint_every_cycle[{}]"
_HA = "tests/ha/test_failover.py::"


def _rpc(name: str) -> Scenario:
    test = ("test_primary_fault_fails_over_fast" if name == "http_5xx" else "test_primary_fault_fails_over")
    return Scenario(f"rpc.primary.{name}", f"{_F}test_rpc_faults.py::{test}[{name}]", name != "http_5xx",
                    f"primary endpoint: {name} (secondary healthy)", "no missed trigger; failover within one tick")


def _drill(checkpoint: str, backend: str) -> Scenario:
    pg = backend == "postgres"
    return Scenario(f"crash.pipeline.{checkpoint}" + (".postgres" if pg else ""), _DRILL.format(checkpoint, backend),
                    pg and checkpoint not in DRILL_PG_FAST,
                    f"SIGKILL of the pipeline process right after the `{checkpoint}` journal write ({backend})", _AUDIT,
                    "PostgreSQL" if pg else "")


def _oracle(kind: str) -> Scenario:
    test = ("test_stale_oracle_refuses_then_recovers" if kind == "stale"
            else f"test_bad_oracle_refuses_then_recovers[{kind}]")
    return Scenario(f"oracle.{kind}", f"{_F}test_bad_data.py::{test}", kind != "stale", f"oracle data: {kind}",
                    "no trade; alert metric keeper_oracle_guard_tripped; recovery when sane")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("abuse.allow_list", _F + "test_abuse.py::test_allow_list_refuses_other_contracts_and_selectors", False,
             "transactions outside the allow-list", "refused before signing"),
    Scenario("abuse.allow_list.daemon", _F + "test_abuse.py::test_daemon_with_a_restricted_allow_list_sends_nothing",
             True, "a restricted allow-list with a rebalance due", "no transaction; refusal counted"),
    Scenario("abuse.cli_inputs", _F + "test_abuse.py::"
             "test_malformed_cli_config_and_snapshot_exit_2_without_traceback_or_tx", True,
             "malformed config, snapshots and arguments", "exit 2, no traceback, no transaction"),
    Scenario("abuse.cli_inputs.subset", _F + "test_abuse.py::test_malformed_inputs_fast_subset", False,
             "malformed config, snapshots and arguments (subset)", "exit 2, no traceback, no transaction"),
    *(Scenario(f"abuse.order.{how}", _F + "test_abuse.py::"
               f"test_bad_order_is_stopped_by_simulation_and_by_the_contract[{how}]", False,
               f"an order violating {how}", "stopped by simulation; if forced, reverted by the contract")
      for how in ("conservation", "slippage")),
    Scenario("crash.daemon.in_mempool", _F + "test_daemon_crash_chain.py::test_kill_daemon_mid_rebalance_then_restart",
             False, "SIGKILL of `keeper run` with its rebalance in the mempool", _AUDIT),
    *(Scenario(f"crash.daemon.{point}", _F + f"test_daemon_crash_chain.py::test_kill_daemon_at_other_points[{point}]",
               True, f"SIGKILL of `keeper run` ({point})", _AUDIT)
      for point in ("mined_unconfirmed", "evicted_while_down")),
    *(Scenario(f"crash.daemon_cycles.{cp}", _CYCLES.format(cp), True,
               f"SIGKILL of `keeper run` right after the `{cp}` journal write, every rebalance cycle", _AUDIT)
      for cp in DAEMON_KILL_CHECKPOINTS),
    Scenario("crash.daemon_cycles.subset", _F + "test_daemon_crash_cycles.py::test_daemon_killed_at_one_checkpoint",
             False, "SIGKILL of `keeper run` right after one journal write, one rebalance cycle", _AUDIT),
    *(_drill(cp, backend) for backend in ("sqlite", "postgres") for cp in DRILL_CHECKPOINTS),
    Scenario("data.pool_weight_jump", _F + "test_bad_data.py::test_pool_jump_beyond_outer_band_halts", True,
             "GMX pool amount ×4 (bands)", "no trade (halt), alert metric keeper_decision_halted, resumes when sane"),
    Scenario("fee.spike_above_cap", _F + "test_daemon_crash_chain.py::test_fee_spike_above_cap_waits_then_includes",
             True, "base fee above the cap", "nothing above the cap; wait visible in metrics; inclusion after"),
    Scenario("ha.file_lock_second_process", _HA + "test_second_process_on_the_same_state_dir_refuses_to_send", False,
             "a second `keeper run` on the same state directory", "the second refuses to send and says why"),
    Scenario("ha.leader_killed_mid_intent", _HA + "test_sigkill_leader_mid_intent_standby_completes_it_exactly_once",
             False, "SIGKILL of the leader with its rebalance in the mempool",
             "the standby takes over within two lease periods and completes the intent exactly once", "PostgreSQL"),
    Scenario("ha.leader_paused_past_lease", _HA + "test_sigstopped_leader_steps_down_after_sigcont_without_sending",
             False, "SIGSTOP of the leader past its lease", "one sender: the paused leader steps down without sending",
             "PostgreSQL"),
    Scenario("ha.started_together", _HA + "test_two_started_at_once_exactly_one_leads_and_a_clean_stop_hands_over",
             False, "two replicas started at once with a rebalance due", "one leader; one sender; one effect",
             "PostgreSQL"),
    *(_oracle(kind) for kind in ORACLE_FAULTS),
    Scenario("pause.sigstop_in_flight", _F + "test_daemon_crash_chain.py::test_sigstop_with_a_rebalance_in_flight",
             True, "SIGSTOP with a rebalance in the mempool", "exactly one effect, journal consistent after SIGCONT"),
    *(Scenario(f"reorg.depth_{d}", _F + f"test_daemon_crash_chain.py::test_reorg_after_inclusion[{d}]", True,
               f"anvil_reorg of depth {d} after inclusion", "the keeper sees the reorg; every intent effective once")
      for d in range(1, 6)),
    Scenario("rpc.all_endpoints_down",
             _F + "test_rpc_faults.py::test_every_endpoint_failing_sends_nothing_then_recovers", True,
             "every endpoint failing", "no transaction; clear logs; metrics; recovery"),
    *(_rpc(name) for name in RPC_FAULTS),
    Scenario("rpc.primary.flip", _F + "test_rpc_faults.py::test_primary_flipping_between_two_nodes", True,
             "primary answers flipping between two nodes", "no missed trigger; failover within one tick"),
    Scenario("secrets.signing_key_scan", SESSION, False, "every key the suites configure",
             "no key in any log, output, metric or error of the session"),
    Scenario("soak.vaults_hour_of_ticks", _F + "test_soak.py::test_soak_many_vaults_an_hour_of_ticks", True,
             "1000 vaults, an hour of ticks with periodic rebalances", "RSS growth < 5%, no missed tick, no fd/thread "
             "growth"),
)

BY_ID: dict[str, Scenario] = {s.id: s for s in SCENARIOS}


def for_test(nodeid: str) -> list[Scenario]:
    """The scenarios a pytest node records (matched on the node id's tail: the rootdir may differ)."""
    return [s for s in SCENARIOS if s.test != SESSION and (nodeid == s.test or nodeid.endswith("/" + s.test))]
