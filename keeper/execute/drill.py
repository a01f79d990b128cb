"""Crash drill: process one intent to the end, optionally SIGKILL-ing itself right after a checkpoint.

    KEEPER_DRILL_RPC=http://127.0.0.1:8545 KEEPER_DRILL_JOURNAL=/tmp/j.sqlite3 KEEPER_DRILL_KEY=0x... \\
    KEEPER_DRILL_TO=0x... KEEPER_DRILL_VALUE=1 [KEEPER_FAULT_KILL_AT=signed] [KEEPER_DRILL_SCENARIO=replace] \\
    python -m keeper.execute.drill

KEEPER_FAULT_KILL_AT=<checkpoint>[@<n>] (keeper.execute.killpoint) kills the process with SIGKILL right after
the n-th persist of that checkpoint. Run it again without the variable: it reconciles and finishes.
KEEPER_DRILL_JOURNAL is a SQLite path or a PostgreSQL URL (KEEPER_DRILL_SCHEMA: its schema).

KEEPER_DRILL_SCENARIO makes the devnet reach the checkpoints that need a stuck or reorganised chain (it moves
anvil with its test RPC methods, so: devnet only):
  plain    (default) mine a block between ticks
  replace  mining paused between ticks except for `evm_mine`; once the original is broadcast the next base fee
           spikes, so it is stuck and replaced at the same nonce (checkpoint `replacement_signed`)
  cancel   as replace, with a deadline two blocks after submission: the stuck intent expires and is cancelled by
           a self-transfer at its nonce (checkpoint `cancel_signed`)
  reorg    once the intent is mined, the block holding it is reorganised away (checkpoint `reorged`)
Exit 0 when the intent is settled, 1 when it is not after KEEPER_DRILL_MAX_TICKS ticks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from keeper import log
from keeper.devnet.anvil import rpc
from keeper.errors import ConfigError
from keeper.execute import killpoint
from keeper.execute.chain import connect
from keeper.execute.gas import GWEI
from keeper.execute.pipeline import Pipeline, PipelineConfig
from keeper.execute.signer import RawKeySigner
from keeper.store import State, Store, open_store
from keeper.store.model import Intent

SCENARIOS = ("plain", "replace", "cancel", "reorg")
SPIKE_BASE_FEE = 100 * GWEI  # far above the original's max fee (about 2 × 1 gwei + priority), below the cap


class _Devnet:
    """What the scenario does to anvil between ticks; each disturbance happens once per process."""

    def __init__(self, url: str, scenario: str, pipeline: Pipeline, key: str) -> None:
        self.url, self.scenario, self.pipeline, self.key = url, scenario, pipeline, key
        self.disturbed = False

    def prepare(self) -> None:
        if self.scenario in ("replace", "cancel"):
            rpc(self.url, "anvil_setNextBlockBaseFeePerGas", [hex(GWEI)])  # the same start for every cycle
            rpc(self.url, "evm_mine")
            rpc(self.url, "evm_setAutomine", [False])

    def step(self, mine: bool) -> None:
        record = self.pipeline.store.get_by_key(self.key)
        if record is not None and not self.disturbed:
            if self.scenario in ("replace", "cancel") and record.state is State.BROADCAST:
                rpc(self.url, "anvil_setNextBlockBaseFeePerGas", [hex(SPIKE_BASE_FEE)])
                self.disturbed = True
            elif self.scenario == "reorg" and record.state is State.MINED and record.mined_block is not None:
                head = int(str(rpc(self.url, "eth_blockNumber")), 16)
                rpc(self.url, "anvil_reorg", [head - record.mined_block + 1, []])
                self.disturbed = True
        if mine:
            rpc(self.url, "evm_mine")


def main(env: Mapping[str, str] = os.environ) -> int:
    log.configure("INFO", json=True)
    url = env["KEEPER_DRILL_RPC"]
    scenario = env.get("KEEPER_DRILL_SCENARIO", "plain")
    if scenario not in SCENARIOS:
        raise ConfigError(f"KEEPER_DRILL_SCENARIO: unknown scenario {scenario!r} (one of {', '.join(SCENARIOS)})")
    kill = killpoint.from_env(env)
    chain = connect([url], int(env.get("KEEPER_DRILL_CHAIN_ID", "31337")), timeout=5.0)
    store: Store = open_store(env["KEEPER_DRILL_JOURNAL"], schema=env.get("KEEPER_DRILL_SCHEMA"))
    signer = RawKeySigner.from_env("KEEPER_DRILL_KEY")
    pipeline = Pipeline(
        store,
        chain,
        signer,
        PipelineConfig(chain_id=chain.chain_id(), confirmations=int(env.get("KEEPER_DRILL_CONFIRMATIONS", "2"))),
        on_persist=kill,
    )
    key = env.get("KEEPER_DRILL_KEY_ID", "drill:" + env["KEEPER_DRILL_TO"].lower())
    devnet = _Devnet(url, scenario, pipeline, key)
    devnet.prepare()
    pipeline.reconcile()
    head = int(str(rpc(url, "eth_blockNumber")), 16)
    pipeline.submit(
        Intent(
            idempotency_key=key,
            to=env["KEEPER_DRILL_TO"],
            value=int(env.get("KEEPER_DRILL_VALUE", "1")),
            deadline_block=head + 2 if scenario == "cancel" else None,
        ),
        head,
    )
    mine = env.get("KEEPER_DRILL_MINE", "1") == "1"
    left = pipeline.run_until_settled(lambda: devnet.step(mine), int(env.get("KEEPER_DRILL_MAX_TICKS", "40")))
    store.close()
    return 0 if not left else 1


if __name__ == "__main__":
    raise SystemExit(main())
