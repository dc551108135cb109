"""Logging: loguru to the console and to rotating files, one line format, secrets redacted.

Every record passes through ``_patch`` before any sink sees it, so a secret (an API key from
the environment, a signature in a URL, ``secret=...`` in a message or in an exception) never
reaches the console, a file or a JSON line. Tracebacks never include local variable values
(``diagnose=False``): they are where keys hide.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from loguru import logger

if TYPE_CHECKING:
    from loguru import Record

CONSOLE_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <7}</level> | {message}"
)
FILE_FORMAT = "{time:YYYY-MM-DDTHH:mm:ss.SSSZ} | {level: <7} | {name}:{line} | {message}"
MASK = "***"

# Environment variables whose values are secrets: credentials are read from them (SPEC §7).
_SECRET_NAME = re.compile(r"(KEY|SECRET|PASSWORD|PASSPHRASE|TOKEN|PRIVATE|MNEMONIC|CREDENTIAL)", re.I)
# key=value / "key": "value" pairs whose value is a secret, wherever they appear in text.
_SECRET_PAIR = re.compile(
    r"""(?ix)
    (\b(?:api[_-]?key|apikey|secret|api[_-]?secret|password|passphrase|token|signature|private[_-]?key)
     ["']?\s*[:=]\s*["']?)
    ([^\s"'&,;}]+)
    """
)
_URL_QUERY = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?#'\"]+)\?[^\s#'\"]*", re.I)
# the password of user:password@ in any URL (the user name stays: it helps and is no secret)
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s/@:'\"]*):[^\s/@'\"]+@", re.I)
# Secrets that live in no environment variable (the tokens inside the config's alert URLs):
# registered once, masked in every text ``redact`` cleans from then on.
_EXTRA: set[str] = set()
_EXTRA_LOCK = threading.Lock()
_URL_PART = re.compile(r"[/:@?&=#,;+]")
_MIN_SECRET_LEN = 6  # shorter env values ("1", "true") would mask ordinary words


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= _MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)  # longest first: no partial leftovers


def add_secrets(values: Iterable[str]) -> None:
    """Mask these values in every text ``redact`` cleans from now on (in this process)."""
    with _EXTRA_LOCK:
        _EXTRA.update(v for v in values if len(v) >= _MIN_SECRET_LEN)


def url_secrets(url: str) -> list[str]:
    """The parts of a notification URL that may be credentials: apprise URLs carry tokens in
    the user/password, the "host" and the path (``tgram://BOT_TOKEN/CHAT_ID``,
    ``discord://WEBHOOK_ID/WEBHOOK_TOKEN``). The password, and every other part of at least
    6 characters except the user name, a host name or address, a plain number and a short
    lower-case word."""
    _, sep, rest = url.partition("://")
    if not sep:
        return [url] if len(url) >= _MIN_SECRET_LEN else []
    userinfo, at, host_path = rest.rpartition("@")
    password = ""
    if at:  # user:password@host - the password always is a secret, the user name is not
        password = userinfo.partition(":")[2]
        password = password if len(password) >= _MIN_SECRET_LEN else ""
        rest = host_path
    parts = [p for p in _URL_PART.split(rest) if len(p) >= _MIN_SECRET_LEN]
    # Numbers (chat and webhook ids, ports) are no secret without their token, and masking
    # them would eat prices and timestamps out of every later log line; nor is a short plain
    # word of a path ("notify", "hedgekit"), which masking would eat out of every message.
    public = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+|-?\d+|[a-z]{1,11}|localhost")
    tail = [p for p in parts if not public.fullmatch(p)]
    return [password, *tail] if password else tail


def redact_url(url: str) -> str:
    """A notification URL as logs may show it: its service, nothing else."""
    scheme, sep, _ = url.partition("://")
    return f"{scheme}://{MASK}" if sep else MASK


def redact(text: str, environ: dict[str, str] | None = None) -> str:
    """``text`` without secrets: environment secret values, registered secrets
    (``add_secrets``), secret key=value pairs, URL passwords (user:password@) and URL query
    strings (signatures, keys and tokens travel there) are replaced."""
    with _EXTRA_LOCK:
        extra = sorted(_EXTRA, key=len, reverse=True)
    for value in sorted({*secret_values(environ), *extra}, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    text = _URL_QUERY.sub(r"\1?...", text)
    text = _URL_PASSWORD.sub(r"\1:" + MASK + "@", text)
    return _SECRET_PAIR.sub(lambda m: m.group(1) + MASK, text)


_banner = ""  # prefixed to every line: "MAINNET" in a mainnet run (mark_mainnet)


def mark_mainnet(on: bool = True) -> None:
    """Every log line of this process says MAINNET loudly (a REAL run on mainnet)."""
    global _banner
    _banner = "*** MAINNET *** " if on else ""


def _patch(record: Record) -> None:
    record["message"] = _banner + redact(record["message"])
    # loguru 0.8 also keeps the message before formatting (JSON lines serialize it).
    fields = cast("dict[str, Any]", record)  # 0.7's Record type has no "template"
    if isinstance(fields.get("template"), str):
        fields["template"] = redact(fields["template"])
    exc = record.get("exception")
    if exc is not None and exc.value is not None:
        text = str(exc.value)
        clean = redact(text)
        if clean != text:
            # Rebuild the exception with the redacted message; keep its type when possible.
            try:
                value = type(exc.value)(clean)
            except Exception:  # noqa: BLE001 - any constructor signature: fall back to RuntimeError
                value = RuntimeError(f"{type(exc.value).__name__}: {clean}")
            record["exception"] = type(exc)(type(value), value, exc.traceback)


def setup_logging(
    level: str = "INFO",
    *,
    log_dir: str | Path | None = "logs",
    json: bool = False,
    console: bool = True,
    rotation_size: str = "20 MB",
    retention: str = "14 days",
) -> Path | None:
    """Console at ``level`` plus ``log_dir/hedgekit_<date>.log`` rotated daily and at
    ``rotation_size``, kept for ``retention``; ``json`` writes JSON lines instead of text."""
    level = level.upper()
    logger.remove()
    logger.configure(patcher=_patch)
    if console:
        logger.add(sys.stderr, level=level, format=CONSOLE_FORMAT, colorize=None,
                   backtrace=False, diagnose=False)
    if log_dir is None:
        return None
    folder = Path(log_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ("hedgekit_{time:YYYY-MM-DD}.jsonl" if json else "hedgekit_{time:YYYY-MM-DD}.log")
    logger.add(
        path, level=level, format=FILE_FORMAT, serialize=json,
        rotation=_DailyOrSize(_bytes(rotation_size)), retention=retention, encoding="utf-8",
        backtrace=False, diagnose=False, enqueue=False,
    )
    return folder


class _DailyOrSize:
    """Rotate at UTC midnight and whenever the file would pass ``max_bytes``
    (loguru 0.7 takes one condition, so both are checked here)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.day: object = None

    def __call__(self, message: Any, file: Any) -> bool:
        day = message.record["time"].astimezone(UTC).date()
        if self.day is None:
            self.day = day
        if day != self.day:
            self.day = day
            return True
        file.seek(0, 2)
        return file.tell() > 0 and file.tell() + len(message) > self.max_bytes


def _bytes(size: str) -> int:
    """'20 MB' -> 20971520; plain numbers are bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?B?)\s*", size.upper())
    if not m:
        raise ValueError(f"log size {size!r}: use e.g. '20 MB', '512 KB' or a number of bytes")
    scale = {"": 1, "B": 1, "K": 1024, "KB": 1024, "M": 1024**2, "MB": 1024**2, "G": 1024**3, "GB": 1024**3}
    return int(float(m.group(1)) * scale[m.group(2)])


# -- one line format for orders and fills ------------------------------------------------------


def order_line(wallet: str, event: str, order_id: str, kind: str, side: str, qty: float,
               trigger: float | None, unit: int | None) -> str:
    at = "market" if trigger is None else f"{trigger:.8g}"
    u = "-" if unit is None else str(unit)
    return f"ORDER {event:<9} wallet={wallet} id={order_id} kind={kind} side={side} qty={qty:.8g} at={at} unit={u}"


def fill_line(wallet: str, order_id: str, kind: str, side: str, qty: float, price: float,
              fee: float, position: float, phase: str) -> str:
    return (
        f"FILL  wallet={wallet} id={order_id} kind={kind} side={side} qty={qty:.8g} "
        f"price={price:.8g} fee={fee:.8g} position={position:.8g} phase={phase}"
    )
