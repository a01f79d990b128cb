"""Decode custom-error reverts by matching the 4-byte selector against every ABI in abis/."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from eth_abi import decode
from eth_utils import keccak, to_checksum_address
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError

from keeper.chain.artifacts import abi_dir


def _type_of(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_type_of(c) for c in param["components"])
        return f"({inner}){param['type'][5:]}"
    return str(param["type"])


@cache
def error_table() -> dict[bytes, tuple[str, list[str]]]:
    table: dict[bytes, tuple[str, list[str]]] = {}
    for path in sorted(abi_dir().glob("*.json")):
        for item in json.loads(path.read_text())["abi"]:
            if item["type"] != "error":
                continue
            types = [_type_of(p) for p in item["inputs"]]
            selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
            table[selector] = (item["name"], types)
    return table


def decode_error(data: str | bytes) -> tuple[str, tuple[Any, ...]]:
    raw = bytes.fromhex(data[2:] if data.startswith("0x") else data) if isinstance(data, str) else data
    name, types = error_table()[raw[:4]]
    values = decode(types, raw[4:])
    return name, tuple(to_checksum_address(v) if t == "address" else v for t, v in zip(types, values, strict=True))


def revert_of(fn: ContractFunction, sender: str) -> tuple[str, tuple[Any, ...]]:
    """Simulate `fn` from `sender`; it must revert with a custom error: returns (name, args)."""
    try:
        fn.call({"from": sender})
    except ContractLogicError as exc:
        data = exc.data
        assert isinstance(data, str), f"revert without data: {exc!r}"
        return decode_error(data)
    raise AssertionError("call did not revert")
