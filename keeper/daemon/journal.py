"""The daemon's bookkeeping keys in the journal's state table, and which finished intents still need it.

Owns the "pending → accounted" protocol both strategies use: a submission stores `<pending>:<id>` with
what it expected; once the intent is final the accountant applies it and writes `<accounted>:<id>` last,
so a crash in between repeats nothing twice. Must not decide or send anything.
"""

from __future__ import annotations

from collections.abc import Iterator

from keeper.store import IntentRecord, State, Store

FINISHED = (State.CONFIRMED, State.FINALIZED, State.FAILED, State.CANCELLED)


def unaccounted(store: Store, sender: str, pending: str, accounted: str) -> Iterator[tuple[IntentRecord, str]]:
    """Each finished intent of `sender` with a `<pending>:<id>` entry and no `<accounted>:<id>` yet."""
    for record in store.all_intents(sender):
        if record.state not in FINISHED:
            continue
        text = store.get_state(f"{pending}:{record.id}")
        if text is None or store.get_state(f"{accounted}:{record.id}") is not None:
            continue
        yield record, text
