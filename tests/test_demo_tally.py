"""The demo's journal tally names why intents failed: mined reverts by their replayed error, simulation-gate
refusals by theirs (from the journal entries the pipeline writes)."""

from __future__ import annotations

from keeper.devnet.demo import tally
from keeper.store import Intent, MemoryStore, State

SENDER = "0x" + "11" * 20


def test_tally_counts_failures_by_error_name() -> None:
    store = MemoryStore()

    def intent(key: str) -> int:
        record, _ = store.submit(Intent(key, to="0x" + "22" * 20, value=1), SENDER)
        return record.id

    for key, error in (("a", "BoundTooLoose(asset=1, minimumUsd=1, requiredUsd=2)"), ("b", "BoundTooLoose(asset=0)"),
                       ("c", "InsufficientBalance(account=0x00, balance=1, needed=2)")):
        store.transition(intent(key), State.PLANNED, State.FAILED, error=f"would revert: {error}")
    mined = intent("d")
    store.transition(mined, State.PLANNED, State.SIMULATED)
    store.transition(mined, State.SIMULATED, State.SIGNED)
    store.transition(mined, State.SIGNED, State.MINED, outcome="reverted",
                     error="reverted on chain: FillOutsideBound(token=0x00, executed=1, minimum=2)")
    j = tally(store, SENDER)
    assert j.refused_errors == {"BoundTooLoose": 2, "InsufficientBalance": 1}
    assert j.reverted_errors == {"FillOutsideBound": 1}
    assert j.outcomes == {"would revert": 3, "reverted": 1}
