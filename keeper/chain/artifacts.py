"""Compiled contract artifacts (ABI + bytecode) from `abis/`.

Owns locating and loading the JSON artifacts written by `make abis`, and the build hash that tells
whether they are stale against `contracts/`. Must not talk to a node.
"""

from __future__ import annotations

import hashlib
import json
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
    """The artifact `abis/<name>.json`: keys `contractName`, `abi`, `bytecode`, `sourceHash`."""
    path = abi_dir() / f"{name}.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"artifact {name!r} not found at {path}; run `make abis`") from exc
    return data


def abi(name: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = load(name)["abi"]
    return result


def source_hash(root: Path | None = None) -> str:
    """sha256 over every `.sol` file under contracts/, as `relative path NUL content NUL`, sorted by path.

    `contracts/compile.mjs` computes the same value and stores it in every artifact.
    """
    base = root or contracts_dir()
    digest = hashlib.sha256()
    for path in sorted(base.rglob("*.sol"), key=lambda p: p.relative_to(base).as_posix()):
        digest.update(path.relative_to(base).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()
