"""Logging: structlog JSON lines when stdout is not a TTY, a readable console in a TTY.

Owns the one renderer every log line goes through, including stdlib loggers (web3, apscheduler),
hex-encoding of bytes and the redaction of secret-looking values. Must not decide anything.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(key|secret|password|passphrase|mnemonic|token|auth)", re.IGNORECASE)
_NOT_SECRET_SUFFIXES = ("_hash", "_id", "_count")
# 32 bytes of hex, 0x-prefixed or bare, not part of a longer hex run (calldata, a 65-byte signature)
_HEX64 = re.compile(r"(?<![0-9a-fA-Fx])(?:0x)?[0-9a-fA-F]{64}(?![0-9a-fA-F])")
_URL_CREDENTIALS = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@]*:)[^\s/@]+@")  # scheme://user:PASSWORD@


def _hex_bytes(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        event[key] = _hex(value)
    return event


def _hex(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {k: _hex(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_hex(v) for v in value]
    return value


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop values of secret-named fields, 32-byte hex strings (a private key looks like that) and passwords
    in URLs, at any depth; a field that must carry a 32-byte hash says so in its name (`tx_hash`, `topic`,
    `*_id`). Runs before rendering and again after exceptions are formatted."""
    for key, value in list(event.items()):
        if key.startswith("_"):  # structlog's own (_record, _from_structlog)
            continue
        event[key] = _scrub(str(key), value)
    return event


def _scrub(key: str, value: Any) -> Any:
    if _SECRET_KEYS.search(key) and not key.endswith(_NOT_SECRET_SUFFIXES):
        return "[redacted]"
    if isinstance(value, str):
        text = _URL_CREDENTIALS.sub(r"\1[redacted]@", value)
        if key.endswith(("hash", "_id", "topic")):
            return text
        return _HEX64.sub("0x[redacted-32-bytes]", text)
    if isinstance(value, dict):
        return {k: _scrub(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(key, v) for v in value]
    return value


def configure(level: str = "INFO", *, json: bool | None = None) -> None:
    """Set up structlog and route stdlib logging through the same renderer. Idempotent."""
    use_json = (not sys.stdout.isatty()) if json is None else json
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _hex_bytes,
        _redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _redact,  # a traceback's text can quote a value
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("urllib3", "web3.providers", "web3.RequestManager", "apscheduler", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    scheduler = logging.getLogger("apscheduler.scheduler")
    if not any(isinstance(f, _SkippedRunFilter) for f in scheduler.filters):
        scheduler.addFilter(_SkippedRunFilter())


class _SkippedRunFilter(logging.Filter):
    """APScheduler warns once per skipped run ("maximum number of running instances reached"); the keeper
    counts those in keeper_scheduler_skipped_runs_total instead of a log line per poll."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


def get(name: str | None = None) -> Any:
    return structlog.get_logger(name)


@contextmanager
def bound(**context: Any) -> Iterator[None]:
    """Bind context (block, vault, intent) to every log line of the current tick, then restore it."""
    tokens = structlog.contextvars.bind_contextvars(**context)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
