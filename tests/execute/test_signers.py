"""Signers: keystore, raw key (file/env, with a warning), remote (anvil's eth_signTransaction)."""

from __future__ import annotations

import copy
import json
import pickle
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from keeper.devnet.anvil import DEV_ACCOUNTS, DEV_KEYS, Anvil
from keeper.errors import ConfigError, SubmissionError
from keeper.execute.signer import KeystoreSigner, RawKeySigner, RemoteSigner
from keeper.store import Intent, State
from tests.execute.conftest import HarnessFactory, balance, fresh_address, nonce

TX = {"type": 2, "chainId": 31337, "nonce": 0, "to": DEV_ACCOUNTS[5], "value": 1, "data": b"", "gas": 21000,
      "maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9}  # fmt: skip


def write_keystore(tmp_path: Path, key: str, password: str = "correct horse") -> tuple[Path, Path]:
    from eth_account import Account

    keystore = tmp_path / "keystore.json"
    keystore.write_text(json.dumps(Account.encrypt(key, password, kdf="pbkdf2", iterations=1000)))
    secret = tmp_path / "password"
    secret.write_text(password + "\n")
    return keystore, secret


def test_keystore_signer_unlocks_with_the_password_file(tmp_path: Path) -> None:
    keystore, password = write_keystore(tmp_path, DEV_KEYS[1])
    signer = KeystoreSigner.from_files(keystore, password)
    assert signer.address == DEV_ACCOUNTS[1]
    signed = signer.sign(TX)
    from eth_account import Account

    assert Account.recover_transaction(signed.raw) == DEV_ACCOUNTS[1]
    assert DEV_KEYS[1][2:] not in repr(signer) + str(signer) + repr(signed)


def test_keystore_wrong_password_names_the_file_only(tmp_path: Path) -> None:
    keystore, password = write_keystore(tmp_path, DEV_KEYS[1])
    password.write_text("hunter2-not-it")
    with pytest.raises(ConfigError, match="cannot decrypt keystore") as info:
        KeystoreSigner.from_files(keystore, password)
    assert "hunter2" not in str(info.value) and info.value.__cause__ is None and info.value.__context__ is None


def test_raw_key_from_file_and_env_warns(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(DEV_KEYS[2] + "\n")
    assert RawKeySigner.from_file(key_file).address == DEV_ACCOUNTS[2]
    monkeypatch.setenv("KEEPER_TEST_SIGNER_KEY", DEV_KEYS[2][2:].upper())
    assert RawKeySigner.from_env("KEEPER_TEST_SIGNER_KEY").address == DEV_ACCOUNTS[2]
    out = capsys.readouterr().out + caplog.text  # structlog prints, or goes through logging once configured
    assert out.count("signer.raw_key") == 2 and "discouraged" in out
    assert DEV_KEYS[2][2:] not in out.lower()


def test_malformed_raw_key_error_does_not_echo_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEPER_TEST_SIGNER_KEY", DEV_KEYS[2][:-1] + "z")
    with pytest.raises(ConfigError) as info:
        RawKeySigner.from_env("KEEPER_TEST_SIGNER_KEY")
    assert DEV_KEYS[2][2:-1] not in str(info.value) and info.value.__context__ is None
    monkeypatch.delenv("KEEPER_TEST_SIGNER_KEY")
    with pytest.raises(ConfigError, match="not set"):
        RawKeySigner.from_env("KEEPER_TEST_SIGNER_KEY")


def test_signers_cannot_be_pickled_or_copied() -> None:
    signer = RawKeySigner(bytes.fromhex(DEV_KEYS[0][2:]), "test")
    for leak in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="key material"):
            leak(signer)
    assert not hasattr(signer, "__dict__")


@pytest.mark.anvil
def test_remote_signer_signs_through_eth_sign_transaction(anvil: Anvil) -> None:
    signer = RemoteSigner(anvil.url, DEV_ACCOUNTS[3])
    signed = signer.sign({**TX, "nonce": 4})
    from eth_account import Account

    assert Account.recover_transaction(signed.raw) == DEV_ACCOUNTS[3]
    assert repr(signer) == f"RemoteSigner(address={DEV_ACCOUNTS[3]}, endpoint={anvil.url})"
    with pytest.raises(SubmissionError) as info:  # an account the endpoint cannot sign for
        RemoteSigner(anvil.url, fresh_address()).sign(TX)
    assert info.value.action == "give_up"


@pytest.mark.anvil
def test_pipeline_with_remote_signer(harness: HarnessFactory, anvil: Anvil) -> None:
    h = harness(signer=RemoteSigner(anvil.url, DEV_ACCOUNTS[4]))
    to = fresh_address()
    record = h.pipeline.submit(Intent("remote", to=to, value=42))
    h.settle()
    assert h.store.get(record.id).state is State.FINALIZED and balance(anvil, to) == 42


@pytest.mark.anvil
def test_remote_signer_answers_from_anvil_pass_the_full_check(anvil: Anvil) -> None:
    """Both transaction types anvil signs (EIP-1559 and legacy with EIP-155) decode to exactly the request."""
    from eth_account import Account

    signer = RemoteSigner(anvil.url, DEV_ACCOUNTS[3])
    legacy = {k: v for k, v in TX.items() if k not in ("type", "maxFeePerGas", "maxPriorityFeePerGas")}
    for tx in ({**TX, "nonce": 7, "data": b"\x01\x02"}, {**legacy, "gasPrice": 3 * 10**9}):
        signed = signer.sign(tx)
        assert Account.recover_transaction(signed.raw) == DEV_ACCOUNTS[3]


Tamper = Callable[[dict[str, Any]], dict[str, Any]]


class _TamperingSigner:
    """A local eth_signTransaction endpoint (a compromised or buggy KMS proxy) that signs with the requested
    account's key, after `tamper` rewrote the transaction; `tamper` and `key` are set per case."""

    def __init__(self) -> None:
        self.tamper: Tamper = lambda tx: tx
        self.key = DEV_KEYS[3]
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                answer = {"jsonrpc": "2.0", "id": body.get("id"), "result": owner.sign(body["params"][0])}
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def sign(self, request: dict[str, Any]) -> str:
        from eth_account import Account

        tx: dict[str, Any] = {
            k: int(v, 16) for k, v in request.items() if k not in ("from", "to", "data") and isinstance(v, str)
        }
        tx.update(to=request["to"], data=bytes.fromhex(request["data"][2:]))
        return "0x" + bytes(Account.sign_transaction(self.tamper(tx), self.key).raw_transaction).hex()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def tampering() -> Iterator[_TamperingSigner]:
    endpoint = _TamperingSigner()
    try:
        yield endpoint
    finally:
        endpoint.close()


def _legacy(tx: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in tx.items() if k not in ("type", "maxFeePerGas", "maxPriorityFeePerGas")}
    return {**out, "gasPrice": tx["maxFeePerGas"]}


def _no_chain_id(tx: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in tx.items() if k != "chainId"}  # legacy without EIP-155: replayable anywhere


OTHER = "0x" + "66" * 20
TAMPERS: dict[str, tuple[Tamper, str]] = {
    "to": (lambda tx: {**tx, "to": OTHER}, "to"),
    "data": (lambda tx: {**tx, "data": b"\xde\xad"}, "data"),
    "value": (lambda tx: {**tx, "value": tx["value"] + 1}, "value"),
    "gas": (lambda tx: {**tx, "gas": tx["gas"] + 1000}, "gas"),
    "max_fee": (lambda tx: {**tx, "maxFeePerGas": tx["maxFeePerGas"] + 1}, "maxFeePerGas"),
    "priority_fee": (lambda tx: {**tx, "maxPriorityFeePerGas": tx["maxPriorityFeePerGas"] - 1}, "maxPriorityFeePerGas"),
    "nonce": (lambda tx: {**tx, "nonce": tx["nonce"] + 1}, "nonce"),
    "chain_id": (lambda tx: {**tx, "chainId": 1}, "chainId"),
    "type": (_legacy, "type"),
    "access_list": (lambda tx: {**tx, "accessList": [{"address": OTHER, "storageKeys": []}]}, "accessList"),
}


@pytest.mark.parametrize("case", sorted(TAMPERS))
def test_remote_signer_answer_differing_from_the_request_is_refused(tampering: _TamperingSigner, case: str) -> None:
    tamper, field = TAMPERS[case]
    signer = RemoteSigner(tampering.url, DEV_ACCOUNTS[3])
    assert signer.sign(TX).tx_hash  # control: the honest answer passes
    tampering.tamper = tamper
    with pytest.raises(SubmissionError, match="not broadcast") as info:
        signer.sign(TX)
    assert info.value.action == "give_up"
    assert field in str(info.value).split("differs from the request in ", 1)[1]


def test_remote_signer_refuses_a_pre_eip155_legacy_signature_and_another_key(tampering: _TamperingSigner) -> None:
    legacy = _legacy(TX)
    signer = RemoteSigner(tampering.url, DEV_ACCOUNTS[3])
    assert signer.sign(legacy).tx_hash
    tampering.tamper = _no_chain_id
    with pytest.raises(SubmissionError, match="chainId"):
        signer.sign(legacy)
    tampering.tamper, tampering.key = (lambda tx: tx), DEV_KEYS[2]
    with pytest.raises(SubmissionError, match="another key"):
        signer.sign(TX)


@pytest.mark.anvil
def test_pipeline_never_broadcasts_a_tampered_signature(harness: HarnessFactory, tampering: _TamperingSigner) -> None:
    tampering.key = DEV_KEYS[4]
    tampering.tamper = TAMPERS["to"][0]
    h = harness(signer=RemoteSigner(tampering.url, DEV_ACCOUNTS[4]))
    to = fresh_address()
    record = h.pipeline.submit(Intent("tampered", to=to, value=42))
    h.pipeline.tick()
    failed = h.store.get(record.id)
    assert failed.state is State.FAILED and "differs from the request in to" in (failed.error or "")
    assert failed.nonce is None and h.store.attempts(record.id) == []  # nothing stored, the nonce released
    assert nonce(h.node, DEV_ACCOUNTS[4], "pending") == 0 and balance(h.node, to) == 0
