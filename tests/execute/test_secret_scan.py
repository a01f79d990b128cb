"""No key material in logs, metrics, exception texts, reprs or test output during a full send cycle."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from keeper import log
from keeper.devnet.anvil import DEV_KEYS, Anvil
from keeper.errors import KeeperError
from keeper.execute.chain import connect
from keeper.execute.gas import GWEI, GasPolicy
from keeper.execute.metrics import ExecutionMetrics, prometheus_hook
from keeper.execute.pipeline import Pipeline, PipelineConfig
from keeper.execute.signer import KeystoreSigner, RawKeySigner, RemoteSigner
from keeper.store import Intent, SqliteStore, State
from tests.execute.conftest import CHAIN_ID, automine, fresh_address, mine, set_next_base_fee

pytestmark = pytest.mark.anvil

KEY = DEV_KEYS[5]
PASSWORD = "pa55-word-never-logged"


def key_patterns(key: str) -> list[re.Pattern[str]]:
    body = key[2:] if key.startswith("0x") else key
    return [re.compile(re.escape(body), re.IGNORECASE), re.compile(re.escape(body[:40]), re.IGNORECASE)]


def assert_clean(text: str, what: str) -> None:
    for pattern in key_patterns(KEY):
        assert not pattern.search(text), f"key material in {what}"
    assert PASSWORD not in text, f"password in {what}"


def test_the_scanner_catches_every_spelling() -> None:
    for spelling in (KEY, KEY[2:], KEY.upper(), "0x" + KEY[2:].upper(), f"key={KEY[2:42]}"):
        with pytest.raises(AssertionError):
            assert_clean(spelling, "control")


@pytest.fixture
def json_logging() -> Iterator[None]:
    """Restores the root logger; the test calls log.configure itself (capsys must be active first)."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield
    import structlog

    structlog.reset_defaults()
    root.handlers[:], level = saved
    root.setLevel(level)


def test_full_send_cycle_leaks_no_key(  # noqa: PLR0917 - pytest fixtures
    anvil: Anvil,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    json_logging: None,
) -> None:
    log.configure("DEBUG", json=True)  # structlog JSON lines to the (captured) stdout
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    monkeypatch.setenv("KEEPER_SCAN_KEY", KEY)
    signer = RawKeySigner.from_env("KEEPER_SCAN_KEY")
    # failure paths produce exception texts too
    from eth_account import Account

    keystore = tmp_path / "ks.json"
    keystore.write_text(json.dumps(Account.encrypt(KEY, PASSWORD, kdf="pbkdf2", iterations=1000)))
    (tmp_path / "pw").write_text(PASSWORD)
    (tmp_path / "bad-pw").write_text(PASSWORD + "x")
    assert KeystoreSigner.from_files(keystore, tmp_path / "pw").address == signer.address
    for attempt in (
        lambda: KeystoreSigner.from_files(keystore, tmp_path / "bad-pw"),
        lambda: RawKeySigner(bytes.fromhex(KEY[2:])[:31], "short"),
        lambda: signer.sign({"nonce": "not-a-number"}),
        lambda: RemoteSigner("http://127.0.0.1:9", signer.address).sign({"to": signer.address, "nonce": 0}),
    ):
        with pytest.raises(KeeperError) as info:
            attempt()
        texts += [str(info.value), repr(info.value), repr(info.value.__cause__), repr(info.value.__context__)]

    registry = CollectorRegistry()
    metrics = ExecutionMetrics(hook=prometheus_hook(registry))
    store = SqliteStore(tmp_path / "j.sqlite3")
    pipeline = Pipeline(
        store,
        connect([anvil.url], CHAIN_ID),
        signer,
        PipelineConfig(chain_id=CHAIN_ID, confirmations=1, stuck_blocks=1, gas=GasPolicy(max_fee_cap=500 * GWEI)),
        metrics=metrics,
    )
    # a stuck send with a replacement, then settle: every log path of a normal cycle runs
    automine(anvil, False)
    to = fresh_address()
    record = pipeline.submit(Intent("scan", to=to, value=1))
    pipeline.tick()
    set_next_base_fee(anvil, 100 * GWEI)
    mine(anvil, 2)
    assert pipeline.run_until_settled(lambda: mine(anvil), 30) == []
    assert store.get(record.id).state is State.FINALIZED
    assert metrics.replacements == 1

    texts += [repr(signer), str(signer), repr(pipeline.__dict__), repr(store), repr(metrics)]
    texts += [repr(r) for r in store.all_intents(signer.address)]
    texts += [repr(a) for a in store.attempts(record.id)]
    texts.append(generate_latest(registry).decode())
    captured = capsys.readouterr()
    texts += [captured.out, captured.err, caplog.text]
    assert "intent.broadcast" in captured.out and "signer.raw_key" in captured.out  # logs were captured
    for i, text in enumerate(texts):
        assert_clean(text, f"captured text #{i}")
    store.close()
