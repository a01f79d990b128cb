"""Signers: one interface, three implementations. Key material never leaves the signer object.

* KeystoreSigner — encrypted JSON keystore (eth-account), password read from a file / secret.
* RawKeySigner  — a raw key from a secret file or an environment variable (accepted, with a warning).
* RemoteSigner  — JSON-RPC `eth_signTransaction` (Web3Signer / KMS proxy; anvil for its dev accounts).

No repr/str/exception/log of these objects contains key material; they refuse to be pickled or copied.
Errors from the crypto libraries are replaced by messages naming the source (file path, env var name) only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

from eth_utils.crypto import keccak

from keeper import log
from keeper.errors import ConfigError, SubmissionError

_log = log.get("keeper.execute.signer")
T = TypeVar("T")
_ADVICE = "raw keys are accepted but discouraged: prefer an encrypted keystore or a remote signer"


@dataclass(frozen=True)
class SignedTx:
    raw: bytes
    tx_hash: str

    def __repr__(self) -> str:
        return f"SignedTx(tx_hash={self.tx_hash}, {len(self.raw)} bytes)"


class Signer(Protocol):
    @property
    def address(self) -> str: ...

    def sign(self, tx: dict[str, Any]) -> SignedTx:
        """Sign an eth-account style transaction dict (type 2 or legacy). SubmissionError(give_up) on failure."""
        ...


class _Sealed:
    """Objects holding key material: safe repr, no pickling, no copying, no __dict__."""

    __slots__ = ()

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} holds key material and cannot be pickled or copied")

    def __copy__(self) -> NoReturn:
        self.__reduce__()

    def __deepcopy__(self, memo: dict[int, Any]) -> NoReturn:
        self.__reduce__()


class LocalSigner(_Sealed):
    """Holds an eth-account LocalAccount privately; base of the keystore and raw-key signers."""

    __slots__ = ("__account", "_address", "_source")

    def __init__(self, key: bytes, source: str) -> None:
        from eth_account import Account

        account = _quietly(lambda: Account.from_key(key))
        if account is None:  # raised outside the handler: no __context__ chains back to the key
            raise ConfigError(f"signer {source}: not a valid secp256k1 private key")
        self.__account = account
        self._address: str = account.address
        self._source = source

    @property
    def address(self) -> str:
        return self._address

    def sign(self, tx: dict[str, Any]) -> SignedTx:
        try:
            signed = self.__account.sign_transaction(tx)
        except Exception as exc:
            raise SubmissionError(f"signing failed ({exc.__class__.__name__})", "give_up") from None
        return SignedTx(bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(address={self._address}, source={self._source})"

    __str__ = __repr__


def _quietly(make: Callable[[], T]) -> T | None:
    """`make()`, or None if it raised; the exception (which may quote its input) is dropped here."""
    try:
        return make()
    except Exception:
        return None


def _read_secret(path: Path, what: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"signer: cannot read {what} file {path} ({exc.__class__.__name__})") from None


def _parse_key(text: str, source: str) -> bytes:
    body = text.strip()
    body = body[2:] if body.lower().startswith("0x") else body
    if len(body) != 64:
        raise ConfigError(f"signer {source}: a raw key must be 32 bytes of hex")
    key = _quietly(lambda: bytes.fromhex(body))
    if key is None:
        raise ConfigError(f"signer {source}: a raw key must be hex")
    return key


class KeystoreSigner(LocalSigner):
    __slots__ = ()

    @classmethod
    def from_files(cls, keystore_file: Path | str, password_file: Path | str) -> KeystoreSigner:
        from eth_account import Account

        keystore_path, password_path = Path(keystore_file), Path(password_file)
        keystore = _read_secret(keystore_path, "keystore")
        password = _read_secret(password_path, "password")
        key = _quietly(lambda: bytes(Account.decrypt(keystore, password)))
        if key is None:
            raise ConfigError(f"signer: cannot decrypt keystore {keystore_path} (wrong password or corrupt file)")
        return cls(key, f"keystore:{keystore_path.name}")


class RawKeySigner(LocalSigner):
    __slots__ = ()

    @classmethod
    def from_file(cls, key_file: Path | str) -> RawKeySigner:
        path = Path(key_file)
        signer = cls(_parse_key(_read_secret(path, "key"), f"file:{path.name}"), f"file:{path.name}")
        _log.warning("signer.raw_key", source="file", path=str(path), advice=_ADVICE)
        return signer

    @classmethod
    def from_secret(cls, text: str, source: str) -> RawKeySigner:
        """From a secret value already in memory (e.g. a SecretStr setting); `source` names where it came from."""
        signer = cls(_parse_key(text, source), source)
        _log.warning("signer.raw_key", source=source, advice=_ADVICE)
        return signer

    @classmethod
    def from_env(cls, variable: str) -> RawKeySigner:
        text = os.environ.get(variable)
        if not text:
            raise ConfigError(f"signer: environment variable {variable} is not set")
        signer = cls(_parse_key(text, f"env:{variable}"), f"env:{variable}")
        _log.warning("signer.raw_key", source="env", variable=variable, advice=_ADVICE)
        return signer


def _quantity(value: int) -> str:
    return hex(value)


class RemoteSigner:
    """eth_signTransaction over JSON-RPC. The answer is verified before anything can broadcast it: it must be a
    transaction signed by `address` whose every field (type, chainId, nonce, gas, to, value, data, the fee fields,
    an empty access list) is the one we asked for, else SubmissionError(give_up) naming the differing fields. A
    signer that rewrites a field (a compromised or buggy proxy) therefore never gets its transaction sent."""

    def __init__(self, url: str, address: str, *, timeout: float = 10.0) -> None:
        from eth_utils.address import to_checksum_address

        from keeper.execute.chain import Web3Transport

        self._transport = Web3Transport(url, timeout)
        self._address = to_checksum_address(address)

    @property
    def address(self) -> str:
        return self._address

    def sign(self, tx: dict[str, Any]) -> SignedTx:

        from keeper.execute.chain import RpcError, TransportError

        request: dict[str, Any] = {"from": self._address}
        for ours, theirs in (
            ("nonce", "nonce"),
            ("gas", "gas"),
            ("value", "value"),
            ("maxFeePerGas", "maxFeePerGas"),
            ("maxPriorityFeePerGas", "maxPriorityFeePerGas"),
            ("gasPrice", "gasPrice"),
            ("chainId", "chainId"),
            ("type", "type"),
        ):
            if ours in tx:
                request[theirs] = _quantity(int(tx[ours]))
        request["to"] = tx["to"]
        data = tx.get("data", b"")
        request["data"] = data if isinstance(data, str) else "0x" + bytes(data).hex()
        try:
            answer = self._transport.request("eth_signTransaction", [request])
        except RpcError as exc:
            raise SubmissionError(f"remote signer refused: {exc.message[:200]}", "give_up") from None
        except TransportError as exc:
            raise SubmissionError(f"remote signer unreachable: {exc}", "retry") from None
        raw_hex = answer.get("raw") if isinstance(answer, dict) else answer
        if not isinstance(raw_hex, str) or not raw_hex.startswith("0x"):
            raise SubmissionError("remote signer: malformed answer", "give_up")
        raw = _quietly(lambda: bytes.fromhex(raw_hex[2:]))
        if not raw:
            raise SubmissionError("remote signer: malformed answer", "give_up")
        decoded = _quietly(lambda: decode_signed(raw))
        if decoded is None:
            raise SubmissionError("remote signer: answer is not a signed transaction", "give_up")
        signer, fields = decoded
        if signer.lower() != self._address.lower():
            raise SubmissionError("remote signer: signed by another key; not broadcast", "give_up")
        differ = sorted(name for name, value in expected_fields(tx).items() if fields.get(name) != value)
        if differ:
            raise SubmissionError(
                f"remote signer: answer differs from the request in {', '.join(differ)}; not broadcast", "give_up"
            )
        return SignedTx(raw, "0x" + keccak(raw).hex())

    def __repr__(self) -> str:
        return f"RemoteSigner(address={self._address}, endpoint={self._transport.display})"


def expected_fields(tx: dict[str, Any]) -> dict[str, Any]:
    """The fields a signed answer must carry for the request `tx` (an eth-account style dict), normalised like
    `decode_signed`: ints, lower-case `to`, bytes `data`, a tuple access list."""
    legacy = "gasPrice" in tx
    kind = int(tx.get("type", 0 if legacy else 2))
    data = tx.get("data", b"")
    fields: dict[str, Any] = {
        "type": kind,
        "chainId": int(tx["chainId"]),
        "nonce": int(tx["nonce"]),
        "gas": int(tx["gas"]),
        "to": str(tx["to"]).lower(),
        "value": int(tx.get("value", 0)),
        "data": bytes.fromhex(data[2:]) if isinstance(data, str) else bytes(data),
    }
    if legacy:
        fields["gasPrice"] = int(tx["gasPrice"])
    else:
        fields["maxFeePerGas"] = int(tx["maxFeePerGas"])
        fields["maxPriorityFeePerGas"] = int(tx["maxPriorityFeePerGas"])
    if kind != 0:
        fields["accessList"] = ()
    return fields


def decode_signed(raw: bytes) -> tuple[str, dict[str, Any]]:
    """(recovered signer, fields) of a signed raw transaction: legacy (EIP-155 chain id from v), EIP-2930 or
    EIP-1559. Raises on anything else (other types, bad encoding, no valid signature)."""
    from eth_account import Account

    signer = str(Account.recover_transaction(raw))
    if raw[0] >= 0x80:
        import rlp  # type: ignore[import-untyped]

        nonce, gas_price, gas, to, value, data, v, _r, _s = rlp.decode(raw)
        v_int = int.from_bytes(v, "big")
        return signer, {
            "type": 0,
            "chainId": (v_int - 35) // 2 if v_int >= 35 else None,  # pre-EIP-155: replayable on any chain
            "nonce": int.from_bytes(nonce, "big"),
            "gasPrice": int.from_bytes(gas_price, "big"),
            "gas": int.from_bytes(gas, "big"),
            "to": "0x" + bytes(to).hex(),
            "value": int.from_bytes(value, "big"),
            "data": bytes(data),
        }
    if raw[0] not in (1, 2):
        raise ValueError(f"unsupported transaction type {raw[0]}")
    from eth_account.typed_transactions.typed_transaction import TypedTransaction
    from hexbytes import HexBytes

    body = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    fields: dict[str, Any] = {
        "type": raw[0],
        "chainId": int(body["chainId"]),
        "nonce": int(body["nonce"]),
        "gas": int(body["gas"]),
        "to": "0x" + bytes(body["to"]).hex() if body.get("to") else None,
        "value": int(body["value"]),
        "data": bytes(body["data"]),
        "accessList": tuple(body.get("accessList") or ()),
    }
    if raw[0] == 2:
        fields["maxFeePerGas"] = int(body["maxFeePerGas"])
        fields["maxPriorityFeePerGas"] = int(body["maxPriorityFeePerGas"])
    else:
        fields["gasPrice"] = int(body["gasPrice"])
    return signer, fields
