"""Alerts of a live run pushed to the user's chat or mail through apprise (SPEC §7).

``alerts:`` in the config lists apprise URLs (``tgram://BOT_TOKEN/CHAT_ID``,
``discord://WEBHOOK_ID/WEBHOOK_TOKEN``, ``mailto://...``, ``json://host/path``). The engine calls
``Alerts.fill``/``refusal``/``reconnect``/``reconciliation``/``guard_trip``/``error``; each
formats one short line and queues it, and returns at once:

* a background thread sends, so a slow or dead chat service never blocks the trading loop;
* a burst is coalesced: at most one notification per ``min_interval_s`` (errors and guard-rail
  trips go out without waiting), each at most ``max_lines`` lines ("... and N more");
* nothing raises into the caller: a failing service is logged (warning) and the run goes on;
  a full queue drops the oldest lines and says how many;
* the URLs' tokens are registered with ``hedgekit.logs`` as secrets, so they never appear in a
  log line or an error message - ours, apprise's or its HTTP client's (their loggers are
  filtered too).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loguru import logger

from hedgekit.logs import add_secrets, redact, redact_url, url_secrets

# std-logging loggers a notification passes through: apprise's own, and the HTTP client's,
# which logs the request line (a webhook token is in its path)
FILTERED_LOGGERS = ("apprise", "urllib3", "urllib3.connectionpool", "requests")


@dataclass(frozen=True, slots=True)
class Alert:
    line: str
    urgent: bool  # sent without waiting for the rate limit


class _RedactFilter(logging.Filter):
    """Cleans apprise's own log records (it may quote a URL or a server's answer)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is passed on as it is
            return True
        clean = redact(text)
        if clean != text:
            record.msg, record.args = clean, ()
        return True


_FILTER = _RedactFilter()


def _num(x: float) -> str:
    return f"{x:,.8g}" if abs(x) < 1e15 else f"{x:.6g}"


class Alerts:
    """Sends short alert lines to apprise URLs without ever blocking or raising."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        label: str = "",
        min_interval_s: float = 30.0,
        max_lines: int = 25,
        max_queue: int = 1_000,
        clock: Callable[[], float] = time.monotonic,
        notifier: Any | None = None,
    ) -> None:
        """``label`` goes into every title (``MAINNET`` shows loudly there); ``notifier`` is an
        ``apprise.Apprise`` (made from ``urls`` when None)."""
        self.urls = list(urls)
        self.label = label
        self.min_interval_s = min_interval_s
        self.max_lines = max_lines
        self.sent = 0  # notifications delivered
        self.failed = 0  # notifications no service took
        self.dropped = 0  # lines dropped because the queue was full
        self._clock = clock
        self._queue: deque[Alert] = deque()
        self._max_queue = max_queue
        self._cond = threading.Condition()
        self._busy = False
        self._flush = False
        self._closing = False
        self._next_at = 0.0
        self._thread: threading.Thread | None = None
        for url in self.urls:
            add_secrets(url_secrets(url))
        for name in FILTERED_LOGGERS:
            log = logging.getLogger(name)
            if _FILTER not in log.filters:
                log.addFilter(_FILTER)
        self._apprise = notifier
        if self._apprise is None and self.urls:
            self._apprise = self._make_apprise()

    @property
    def enabled(self) -> bool:
        return self._apprise is not None

    def _make_apprise(self) -> Any:
        try:
            import apprise
        except ImportError:
            logger.warning("alerts are configured but apprise is not installed: none will be sent")
            return None
        ap = apprise.Apprise()
        for i, url in enumerate(self.urls):
            if not ap.add(url):
                # never the URL itself: its token is in it
                logger.warning("alerts[{}] ({}) is not a URL apprise can use: skipped", i, redact_url(url))
        return ap if len(ap) else None

    # -- what the engine calls --------------------------------------------------------------------
    def fill(self, wallet: str, kind: str, side: str, qty: float, price: float,
             position: float | None = None) -> None:  # fmt: skip
        pos = "" if position is None else f" (position {_num(position)})"
        self._put(f"FILL {wallet}: {kind} {side} {_num(qty)} @ {_num(price)}{pos}")

    def refusal(self, wallet: str, order: str, reason: str) -> None:
        self._put(f"REFUSED {wallet}: {order}: {reason}")

    def reconnect(self, what: str, down_s: float | None = None) -> None:
        after = "" if down_s is None else f" after {down_s:.0f} s"
        self._put(f"RECONNECTED {what}{after}")

    def reconciliation(self, wallet: str, summary: str) -> None:
        self._put(f"RECONCILED {wallet}: {summary}")

    def guard_trip(self, wallet: str, rule: str, detail: str = "") -> None:
        self._put(f"GUARD {wallet}: {rule}" + (f": {detail}" if detail else ""), urgent=True)

    def error(self, what: str, err: BaseException | str) -> None:
        text = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
        self._put(f"ERROR {what}: {text}", urgent=True)

    # -- life cycle --------------------------------------------------------------------------
    def flush(self, timeout: float | None = 10.0) -> bool:
        """Send what is queued now (the rate limit waived) and wait until it is sent or
        ``timeout`` passes; True when nothing is left."""
        with self._cond:
            if not self._queue and not self._busy:
                return True
            self._flush = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Flush, then stop the sender (a service that hangs is given up after ``timeout``)."""
        self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- internals ---------------------------------------------------------------------------------
    def _put(self, line: str, *, urgent: bool = False) -> None:
        if self._apprise is None:
            return
        try:
            alert = Alert(redact(" ".join(line.split()))[:500], urgent)
            with self._cond:
                if self._closing:
                    return
                if len(self._queue) >= self._max_queue:
                    self._queue.popleft()
                    self.dropped += 1
                self._queue.append(alert)
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="hedgekit-alerts", daemon=True)
                    self._thread.start()
                self._cond.notify_all()
        except Exception as err:  # noqa: BLE001 - an alert never breaks the trading loop
            logger.warning("alert not queued: {}", redact(f"{type(err).__name__}: {err}"))

    def _ready(self) -> bool:
        if not self._queue:
            return self._closing
        return (self._flush or self._closing or any(a.urgent for a in self._queue)
                or self._clock() >= self._next_at)  # fmt: skip

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._ready():
                    wait = None if not self._queue else max(self._next_at - self._clock(), 0.0)
                    self._cond.wait(wait)
                if not self._queue:
                    return  # closing
                batch = list(self._queue)
                self._queue.clear()
                dropped, self.dropped = self.dropped, 0
                self._busy = True
            try:
                self._send(batch, dropped)
            finally:
                with self._cond:
                    self._busy = False
                    if not self._queue:
                        self._flush = False
                    self._next_at = self._clock() + self.min_interval_s
                    self._cond.notify_all()

    def _send(self, batch: list[Alert], dropped: int) -> None:
        lines = [a.line for a in batch]
        shown = lines[: self.max_lines]
        more = len(lines) - len(shown) + dropped
        if more:
            shown.append(f"... and {more} more")
        head = batch[0].line.split(" ", 1)[0] if len(batch) == 1 else f"{len(batch)} events"
        title = " ".join(p for p in ("hedgekit", self.label, head) if p)
        try:
            assert self._apprise is not None  # (only queued when there is one)
            ok = bool(self._apprise.notify(body="\n".join(shown), title=title))
        except Exception as err:  # noqa: BLE001 - a failing alert is logged, never raised
            ok = False
            logger.warning("alert not sent: {}", redact(f"{type(err).__name__}: {err}"))
        if ok:
            self.sent += 1
        else:
            self.failed += 1
            logger.warning("alerts: {} line(s) could not be delivered to {} service(s) ({})", len(lines),
                           len(self.urls), ", ".join(redact_url(u) for u in self.urls))  # fmt: skip
