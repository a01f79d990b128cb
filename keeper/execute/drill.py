"""Crash drill: process one intent to the end, optionally SIGKILL-ing itself right after a checkpoint.

    KEEPER_DRILL_RPC=http://127.0.0.1:8545 KEEPER_DRILL_JOURNAL=/tmp/j.sqlite3 KEEPER_DRILL_KEY=0x... \\
    KEEPER_DRILL_TO=0x... KEEPER_DRILL_VALUE=1 [KEEPER_DRILL_KILL_AT=signed] python -m keeper.execute.drill

KEEPER_DRILL_KILL_AT names a checkpoint (planned, simulated, nonce_reserved, signed, sent, broadcast, mined,
confirmed): the process kills itself with SIGKILL right after it. Run it again without the variable: it
reconciles and finishes. Devnet only: it mines blocks with `evm_mine` between ticks (KEEPER_DRILL_MINE=1).
Exit 0 when the intent is settled, 1 when it is not after KEEPER_DRILL_MAX_TICKS ticks.
"""

from __future__ import annotations

import os
import signal
import sys

from keeper import log
from keeper.devnet.anvil import rpc
from keeper.execute.chain import connect
from keeper.execute.pipeline import Pipeline, PipelineConfig
from keeper.execute.signer import RawKeySigner
from keeper.store import IntentRecord, Store, open_store
from keeper.store.model import Intent


def main() -> int:
    env = os.environ
    log.configure("INFO", json=True)
    url = env["KEEPER_DRILL_RPC"]
    kill_at = env.get("KEEPER_DRILL_KILL_AT")
    chain = connect([url], int(env.get("KEEPER_DRILL_CHAIN_ID", "31337")), timeout=5.0)
    store: Store = open_store(env["KEEPER_DRILL_JOURNAL"], schema=env.get("KEEPER_DRILL_SCHEMA"))
    signer = RawKeySigner.from_env("KEEPER_DRILL_KEY")

    def checkpoint(label: str, _record: IntentRecord) -> None:
        if label == kill_at:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    pipeline = Pipeline(
        store,
        chain,
        signer,
        PipelineConfig(chain_id=chain.chain_id(), confirmations=int(env.get("KEEPER_DRILL_CONFIRMATIONS", "2"))),
        on_persist=checkpoint,
    )
    pipeline.reconcile()
    pipeline.submit(
        Intent(
            idempotency_key=env.get("KEEPER_DRILL_KEY_ID", "drill:" + env["KEEPER_DRILL_TO"].lower()),
            to=env["KEEPER_DRILL_TO"],
            value=int(env.get("KEEPER_DRILL_VALUE", "1")),
        )
    )
    mine = env.get("KEEPER_DRILL_MINE", "1") == "1"

    def step() -> None:
        if mine:
            rpc(url, "evm_mine")

    left = pipeline.run_until_settled(step, int(env.get("KEEPER_DRILL_MAX_TICKS", "40")))
    store.close()
    return 0 if not left else 1


if __name__ == "__main__":
    raise SystemExit(main())
