"""Compiled contract artifacts (ABI + bytecode) from `abis/`.

Owns locating and loading the JSON artifacts written by `make abis`, and the build hash that tells
whether they are stale against `contracts/`. Must not talk to a node.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

_REPO_ROOT = Path(__file__).resolve().parents[2]


def abi_dir() -> Path:
    """The artifact folder: packaged copy first (wheel installs), else the repository's `abis/`."""
    packaged = Path(__file__).resolve().parents[1] / "_abis"
    return packaged if packaged.is_dir() else _REPO_ROOT / "abis"


def contracts_dir() -> Path:
    return _REPO_ROOT / "contracts"


@cache
def load(name: str) -> dict[str, Any]:
    """The artifact `abis/<name>.json`: keys `contractName`, `abi`, `bytecode`, `deployedBytecode`,
    `sources` (its compilation unit), `sourceHash`, `compiler`."""
    path = abi_dir() / f"{name}.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"artifact {name!r} not found at {path}; run `make abis`") from exc
    return data


def abi(name: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = load(name)["abi"]
    return result


COMPILER_FILE = "compiler.json"


def compiler_config(root: Path | None = None) -> dict[str, Any]:
    """`contracts/compiler.json`: the pinned solc version (`solc`) and the standard-JSON `settings`."""
    data: dict[str, Any] = json.loads(((root or contracts_dir()) / COMPILER_FILE).read_text())
    return data


def source_hash(sources: Iterable[str] | None = None, root: Path | None = None) -> str:
    """sha256 over the given sources (relative paths under contracts/; default: every `.sol` file) and
    `compiler.json` (solc version and settings), as `relative path NUL content NUL`, sorted by path.

    `contracts/compile.mjs` stores in every artifact its compilation unit (`sources`: the contract's file
    and all it imports) and this hash of them, so a change of any byte of those sources, of a compiler
    setting or of the solc version makes the artifact stale. A listed source that no longer exists raises
    FileNotFoundError.
    """
    base = root or contracts_dir()
    settings = base / COMPILER_FILE
    if not settings.is_file():
        raise FileNotFoundError(f"{settings} not found: the compiler version and settings live there")
    if sources is None:
        rels = [path.relative_to(base).as_posix() for path in base.rglob("*.sol")]
    else:
        rels = list(sources)
    digest = hashlib.sha256()
    for rel in sorted({*rels, COMPILER_FILE}):
        path = base / rel
        if not path.is_file():
            raise FileNotFoundError(f"source {rel} not found under {base}")
        digest.update(rel.encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def is_fresh(artifact: Mapping[str, Any], root: Path | None = None) -> bool:
    """Whether an artifact's recorded `sourceHash` matches its compilation unit's sources as they are now."""
    try:
        return bool(artifact["sourceHash"] == source_hash(artifact["sources"], root))
    except FileNotFoundError:
        return False
