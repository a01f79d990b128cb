"""Find a signing key in text, in any spelling: with or without 0x, any letter case."""

from __future__ import annotations

from collections.abc import Iterable


def key_variants(key: str) -> list[str]:
    bare = key.lower().removeprefix("0x")
    return [bare, "0x" + bare]


def leaks(texts: Iterable[tuple[str, str]], key: str) -> list[str]:
    """Names of the texts (name, text) that contain the key (case-insensitive, with or without 0x)."""
    bare = key.lower().removeprefix("0x")
    if len(bare) != 64:
        raise ValueError("expected a 32-byte hex key")
    return [name for name, text in texts if bare in text.lower()]
