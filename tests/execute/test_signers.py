"""Signers: keystore, raw key (file/env, with a warning), remote (anvil's eth_signTransaction)."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import pytest

from keeper.devnet.anvil import DEV_ACCOUNTS, DEV_KEYS, Anvil
from keeper.errors import ConfigError, SubmissionError
from keeper.execute.signer import KeystoreSigner, RawKeySigner, RemoteSigner
from keeper.store import Intent, State
from tests.execute.conftest import HarnessFactory, balance, fresh_address

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
