"""Find a signing key in text, in any spelling, and scan everything a test session produced for it.

`leaks(texts, key)` finds a key (with or without 0x, any letter case, or as a Python bytes repr) in named
texts. `SecretScan` is the session-wide registry the test suites feed: the keys they configure, texts
(process output, /metrics scrapes, error reports) scanned as they arrive, and files (daemon logs, still being
written) scanned at the end. It keeps counts and the *names* of leaking artifacts, never the text or the key.

Must not print, log or return a key: a finding names the artifact and the key's label only.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

_CHUNK = 1 << 20


def _bare(key: str) -> str:
    bare = key.lower().removeprefix("0x")
    if len(bare) != 64 or any(ch not in "0123456789abcdef" for ch in bare):
        raise ValueError("expected a 32-byte hex key")
    return bare


def key_variants(key: str) -> list[str]:
    """The lowercase needles that spell `key`: bare hex, 0x hex, and the escaped text of `repr(bytes)`."""
    bare = _bare(key)
    return [bare, "0x" + bare, repr(bytes.fromhex(bare)).lower()[2:-1]]


def leaks(texts: Iterable[tuple[str, str]], key: str) -> list[str]:
    """Names of the texts (name, text) that contain the key (case-insensitive, with or without 0x, bytes repr)."""
    needles = key_variants(key)
    return [name for name, text in texts if any(n in text.lower() for n in needles)]


@dataclass
class SecretScan:
    """Keys (label → hex key) and the artifacts of a session; `leaks` lists (artifact name, key label)."""

    keys: dict[str, str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)  # artifacts scanned, by kind
    lines: int = 0
    found: list[tuple[str, str]] = field(default_factory=list)
    files: dict[Path, tuple[str, str]] = field(default_factory=dict)  # path → (kind, name), scanned by finish()
    _needles: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        for label, key in list(self.keys.items()):
            self.add_key(label, key)

    def add_key(self, label: str, key: str) -> None:
        """Scan every later text and every file (at finish) for `key` too."""
        needles = key_variants(key)
        with self._lock:
            self.keys[label] = key
            self._needles[label] = needles

    def add_text(self, kind: str, name: str, text: str | bytes | None) -> None:
        """Scan one artifact now (kind: log, metrics, output, report, error ...); keeps counts, not the text."""
        if text is None:
            return
        body = text.decode(errors="replace") if isinstance(text, bytes) else text
        self._scan(kind, name, body.lower(), lines=body.count("\n") + 1, count=True)

    def add_file(self, kind: str, name: str, path: Path) -> None:
        """Scan `path` when the session finishes (a log still being written now)."""
        with self._lock:
            self.files.setdefault(Path(path), (kind, name))

    def _scan(self, kind: str, name: str, lowered: str, *, lines: int, count: bool) -> None:
        with self._lock:
            if count:
                self.counts[kind] += 1
            self.lines += lines
            for label, needles in self._needles.items():
                if any(n in lowered for n in needles) and (name, label) not in self.found:
                    self.found.append((name, label))

    def finish(self, extra_files: Iterable[tuple[str, str, Path]] = ()) -> list[tuple[str, str]]:
        """Scan the registered files (and `extra_files` (kind, name, path)); every leak found in the session."""
        with self._lock:
            pending = dict(self.files)
            self.files.clear()
        for kind, name, path in extra_files:
            pending.setdefault(Path(path), (kind, name))
        overlap = max((len(n) for ns in self._needles.values() for n in ns), default=0)
        for path, (kind, name) in pending.items():
            try:
                handle = path.open("rb")
            except OSError:
                continue
            with handle:
                tail = ""
                self.counts[kind] += 1
                while chunk := handle.read(_CHUNK):
                    text = chunk.decode(errors="replace").lower()
                    self._scan(kind, name, tail + text, lines=text.count("\n"), count=False)
                    tail = text[-overlap:]  # a key split across two chunks is still found
        return list(self.found)

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts.items())) or "nothing"
        return (f"{kinds} ({self.lines} lines) scanned for {len(self.keys)} key(s): "
                f"{len({name for name, _ in self.found})} containing a key")
