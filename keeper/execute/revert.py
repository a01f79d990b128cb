"""Decode revert data: custom errors from every ABI in abis/, plus Error(string) and Panic(uint256)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.crypto import keccak

ERROR_STRING = bytes.fromhex("08c379a0")
PANIC = bytes.fromhex("4e487b71")


def _type_of(param: dict[str, Any]) -> str:
    kind: str = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_type_of(c) for c in param.get("components", []))
        return f"({inner}){kind[5:]}"
    return kind


@dataclass(frozen=True)
class ErrorSpec:
    contract: str
    name: str
    types: tuple[str, ...]
    arg_names: tuple[str, ...]

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(self.types)})"

    @property
    def selector(self) -> bytes:
        return keccak(text=self.signature)[:4]


@dataclass(frozen=True)
class DecodedRevert:
    name: str
    args: tuple[Any, ...]
    contracts: tuple[str, ...] = ()
    arg_names: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.arg_names and len(self.arg_names) == len(self.args):
            inner = ", ".join(f"{n}={_fmt(v)}" for n, v in zip(self.arg_names, self.args, strict=True))
        else:
            inner = ", ".join(_fmt(v) for v in self.args)
        return f"{self.name}({inner})"


def _fmt(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


class ErrorDecoder:
    """Maps 4-byte selectors to error definitions across all artifacts."""

    def __init__(self, specs: list[ErrorSpec]) -> None:
        self._by_selector: dict[bytes, list[ErrorSpec]] = {}
        for spec in specs:
            bucket = self._by_selector.setdefault(spec.selector, [])
            if all(s.signature != spec.signature or s.contract != spec.contract for s in bucket):
                bucket.append(spec)

    @classmethod
    def from_abi_dir(cls, directory: Path | None = None) -> ErrorDecoder:
        if directory is None:
            from keeper.chain.artifacts import abi_dir

            directory = abi_dir()
        specs: list[ErrorSpec] = []
        for path in sorted(directory.glob("*.json")):
            try:
                abi = json.loads(path.read_text()).get("abi", [])
            except (OSError, ValueError):
                continue
            for item in abi:
                if item.get("type") == "error":
                    inputs = item.get("inputs", [])
                    specs.append(
                        ErrorSpec(
                            contract=path.stem,
                            name=item["name"],
                            types=tuple(_type_of(i) for i in inputs),
                            arg_names=tuple(i.get("name", "") for i in inputs),
                        )
                    )
        return cls(specs)

    def decode(self, data: bytes) -> DecodedRevert:
        if len(data) < 4:
            return DecodedRevert("EmptyRevert" if not data else "UnknownRevert", ((data,) if data else ()))
        selector, body = data[:4], data[4:]
        if selector == ERROR_STRING:
            try:
                (reason,) = abi_decode(["string"], body)
                return DecodedRevert("Error", (reason,), arg_names=("reason",))
            except Exception:  # malformed payload: report it raw
                return DecodedRevert("Error", (body,))
        if selector == PANIC:
            try:
                (code,) = abi_decode(["uint256"], body)
                return DecodedRevert("Panic", (hex(code),), arg_names=("code",))
            except Exception:
                return DecodedRevert("Panic", (body,))
        for spec in self._by_selector.get(selector, []):
            try:
                args = tuple(abi_decode(list(spec.types), body))
            except Exception:  # noqa: S112 - same selector, other layout: try the next candidate
                continue
            contracts = tuple(s.contract for s in self._by_selector[selector] if s.signature == spec.signature)
            return DecodedRevert(spec.name, args, contracts, spec.arg_names)
        return DecodedRevert("UnknownError", ("0x" + selector.hex(), "0x" + body.hex()))
