"""`hedgekit download`: candles, funding rates and mark prices from any ccxt exchange.

Files are written in freqtrade's layout (see :mod:`hedgekit.feeds.datadir`), so that a
freqtrade ``user_data/data`` folder and a hedgekit download folder are interchangeable.

Downloads are incremental (only what lies before the file's first row or after its last is
fetched). Every write goes to a temporary file that must pass the loader's own checks
(:func:`hedgekit.feeds.history.load_candles` / ``load_funding``) before it is renamed over the
old file, and the file is rewritten every ``checkpoint_pages`` pages, so a killed download
leaves a valid, contiguous file and the rerun carries on from its last row.

Paging works the same on every venue: the span is cut into windows of one page
(``limit × step``), each asked for with ``since`` and ``until``. Rows outside the window are
kept only if they fall in the span (overlapping pages are harmless, later answers win), the
page may come in any order, and a page that starts after the window's start is followed by a
request for the part before it (venues such as Bybit return the newest rows of a window
first, so a short page loses the oldest). An empty window is skipped in one look-ahead
request where the venue answers a bare ``since`` with what follows (Binance), else walked.
Venue differences are data in :data:`hedgekit.feeds.datadir.VENUES`.
"""

from __future__ import annotations

import difflib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from loguru import logger

from hedgekit.feeds.base import Backoff, describe
from hedgekit.feeds.datadir import (
    DownloadError,
    SeriesKind,
    data_file,
    is_contract,
    iso,
    quirks_for,
    timeframe_ms,
)
from hedgekit.feeds.errors import DataError
from hedgekit.feeds.history import Candles, FundingSeries, load_candles, load_funding, to_epoch_ms

__all__ = [
    "DownloadError",
    "DownloadResult",
    "Downloader",
    "SeriesResult",
    "list_timeframes",
    "make_exchange",
]

# -- ccxt -------------------------------------------------------------------------------------


def make_exchange(exchange_id: str, symbol: str | None = None) -> Any:
    """A synchronous ccxt exchange with ccxt's rate limiter on, loading only the market kinds
    the symbol needs. Nothing is sent before the first request."""
    import ccxt

    if exchange_id not in ccxt.exchanges:
        close = difflib.get_close_matches(exchange_id, ccxt.exchanges, n=3)
        hint = f"did you mean {' or '.join(close)}?" if close else "see `ccxt.exchanges`"
        raise DownloadError(f"--exchange {exchange_id!r} is not a ccxt exchange; {hint}")
    config: dict[str, Any] = {"enableRateLimit": True}
    q = quirks_for(exchange_id)
    kind = "swap" if symbol is None or is_contract(symbol) else "spot"
    types = q.swap_markets if kind == "swap" else q.spot_markets
    if types:
        config["options"] = {"fetchMarkets": {"types": list(types)}, "defaultType": kind}
    return getattr(ccxt, exchange_id)(config)


def list_timeframes(exchange_id: str) -> list[str]:
    """The candle timeframes ccxt knows for the venue (no network)."""
    exchange = make_exchange(exchange_id)
    return list(getattr(exchange, "timeframes", None) or {})


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeriesResult:
    kind: SeriesKind
    path: Path
    rows: int
    added: int
    requests: int
    first_ms: int | None
    last_ms: int | None
    gaps: tuple[tuple[int, int], ...] = ()
    skipped: str = ""  # why nothing was downloaded (the venue has no such series, ...)


@dataclass(frozen=True, slots=True)
class DownloadResult:
    exchange: str
    symbol: str
    series: tuple[SeriesResult, ...]

    @property
    def requests(self) -> int:
        return sum(s.requests for s in self.series)


# The loader logs from these modules (loguru disables a module and those under it, not siblings).
_LOADER_MODULES = ("hedgekit.feeds.history", "hedgekit.feeds.formats", "hedgekit.feeds.validation")
_LONGEST_WAIT_S = 300.0  # a longer Retry-After is a ban: stop and say so, do not hang

# (kind, done steps, total steps) while a series downloads
Progress = Callable[[str, int, int], None]


# -- the downloader ---------------------------------------------------------------------------


@dataclass
class _Plan:
    kind: SeriesKind
    timeframe: str
    step: int  # ms between rows (the bar length, or the funding interval)
    path: Path
    segments: list[tuple[int, int]]  # half-open [start, end) spans to fetch
    existing: np.ndarray | None  # rows already on disk, (n, 6) float64 with ts first


class Downloader:
    """Fetches one symbol's series into a data folder. ``exchange`` is a ccxt exchange (made
    with :func:`make_exchange` when omitted); ``now_ms`` and ``sleep`` are injectable so that
    tests control time; ``checkpoint_pages``: the file is rewritten (atomically) every so many
    pages, which is how a killed download resumes."""

    def __init__(
        self,
        exchange_id: str,
        symbol: str,
        root: str | Path,
        *,
        exchange: Any = None,
        backoff: Backoff | None = None,
        now_ms: Callable[[], int] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        checkpoint_pages: int = 50,
    ) -> None:
        if "/" not in symbol:
            raise DownloadError(
                f"--symbol {symbol!r}: use ccxt's unified symbol, e.g. BTC/USDT:USDT for the "
                "USDT-margined perpetual or BTC/USDT for spot (it also names the files)"
            )
        self.exchange_id = exchange_id
        self.symbol = symbol
        self.root = Path(root)
        self.quirks = quirks_for(exchange_id)
        self._exchange = exchange
        self.backoff = backoff or Backoff(initial=1.0, max=30.0, max_attempts=6)
        self._rng = self.backoff.rng()
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.sleep = sleep
        self.checkpoint_pages = max(1, checkpoint_pages)
        self.requests = 0

    @property
    def exchange(self) -> Any:
        if self._exchange is None:
            self._exchange = make_exchange(self.exchange_id, self.symbol)
        return self._exchange

    # -- public -------------------------------------------------------------------------------

    def download(
        self,
        timeframe: str,
        start: Any,
        end: Any = None,
        *,
        funding: bool = True,
        mark: bool = True,
        progress: Progress | None = None,
    ) -> DownloadResult:
        """Bring the candles (and, for a contract, funding and mark prices) up to
        ``[start, end)``; ``end`` defaults to now, ``start`` to the first bar of the candle
        file already there (an update). Returns what each file holds afterwards."""
        if start is None:
            path = data_file(self.root, self.exchange_id, self.symbol, timeframe)
            held = _read_existing(path, "candles")
            if held is None or not len(held):
                raise DownloadError(f"no {path} yet: give --from to say where the history starts")
            start = int(held[0, 0])
        lo = to_epoch_ms(start)
        hi = self.now_ms() if end is None else min(to_epoch_ms(end), self.now_ms())
        if hi <= lo:
            raise DownloadError(f"--to must be after --from (and not in the future): {start} .. {end}")
        tf_ms = timeframe_ms(timeframe)
        offered = list(getattr(self.exchange, "timeframes", None) or {})
        if offered and timeframe not in offered:
            raise DownloadError(
                f"{self.exchange_id} has no {timeframe} candles; it offers {', '.join(offered)}"
            )
        results = [self._series("candles", timeframe, tf_ms, lo, hi, progress)]
        contract = is_contract(self.symbol)
        for kind, wanted, tf in (
            ("funding", funding, self.quirks.funding_timeframe),
            ("mark", mark, self.quirks.mark_timeframe),
        ):
            if not wanted:
                continue
            if not contract or tf is None:
                why = "spot market" if not contract else f"{self.exchange_id} has no {kind} history"
                results.append(SeriesResult(kind, Path(), 0, 0, 0, None, None, skipped=why))  # type: ignore[arg-type]
                continue
            results.append(self._series(kind, tf, timeframe_ms(tf), lo, hi, progress))  # type: ignore[arg-type]
        return DownloadResult(self.exchange_id, self.symbol, tuple(results))

    # -- one series ---------------------------------------------------------------------------

    def _plan(self, kind: SeriesKind, timeframe: str, step: int, lo: int, hi: int) -> _Plan:
        path = data_file(self.root, self.exchange_id, self.symbol, timeframe, kind)
        _remove_stale_parts(path)
        existing = _read_existing(path, kind)
        if existing is None or not len(existing):
            return _Plan(kind, timeframe, step, path, [(lo, hi)], None)
        first, last = int(existing[0, 0]), int(existing[-1, 0])
        segments = []
        if kind == "funding":
            # Funding is stamped a few ms late; a rate is due one interval after the last.
            interval = _funding_interval(existing[:, 0].astype(np.int64)) or step
            if lo <= first - interval:
                segments.append((lo, first))
            if last + interval < hi:
                segments.append((last + 1, hi))
        else:
            if lo < first:
                segments.append((lo, first))
            if last + step < hi:
                segments.append((last + step, hi))
        return _Plan(kind, timeframe, step, path, segments, existing)

    def _series(self, kind: SeriesKind, timeframe: str, step: int, lo: int, hi: int,
                progress: Progress | None) -> SeriesResult:  # fmt: skip
        plan = self._plan(kind, timeframe, step, lo, hi)
        before = self.requests
        rows = plan.existing if plan.existing is not None else np.empty((0, 6))
        added = 0
        total = sum(max(0, (b - a) // step) for a, b in plan.segments)
        done = 0
        for a, b in plan.segments:
            pending: list[np.ndarray] = []
            # The part before the file's first row is written only once complete: the file
            # must stay one contiguous span, or the rerun would not know what is missing.
            prefix = plan.existing is not None and b <= int(plan.existing[0, 0])
            if prefix and not self._has_rows_before(kind, timeframe, step, a, b):
                done += max(0, (b - a) // step)
                continue
            for pages, (page, reached) in enumerate(self._pages(kind, timeframe, step, a, b), 1):
                pending.append(page)
                if progress is not None:
                    done_now = min(total, done + max(0, (reached - a) // step))
                    progress(kind, done_now, total)
                if not prefix and pages % self.checkpoint_pages == 0:
                    rows, n = self._write(plan, rows, pending)
                    added += n
                    pending = []
            rows, n = self._write(plan, rows, pending)
            added += n
            done += max(0, (b - a) // step)
        if progress is not None:
            progress(kind, total, total)
        if not len(rows):
            nothing = f"the venue returned no {kind} between {iso(lo)} and {iso(hi)}"
            if kind == "candles":
                raise DownloadError(f"{self.exchange_id} {self.symbol}: {nothing}")
            return SeriesResult(kind, plan.path, 0, 0, self.requests - before, None, None,
                                skipped=nothing)  # fmt: skip
        checked = self._check(plan.path, kind)
        gaps = checked.gaps if isinstance(checked, Candles) else ()
        return SeriesResult(
            kind, plan.path, len(rows), added, self.requests - before,
            int(rows[0, 0]), int(rows[-1, 0]), gaps,
        )  # fmt: skip

    def _has_rows_before(self, kind: SeriesKind, timeframe: str, step: int, lo: int,
                         first: int) -> bool:  # fmt: skip
        """Whether the page just before the file's first row holds anything: a file usually
        starts where the venue's history does, and a rerun with an earlier --from must not
        walk the empty years before the listing again (an outage longer than a page just
        before the file's start would hide older rows: that is logged)."""
        limit = self.quirks.funding_limit if kind == "funding" else self.quirks.candle_limit
        a = max(lo, first - limit * step)
        page = self._window(kind, timeframe, a, first, limit, self.now_ms())
        if len(page) and bool(((page[:, 0] >= lo) & (page[:, 0] < first)).any()):
            return True
        logger.info("{}: nothing in the page before the file's first row ({}); taking it as "
                    "the start of the venue's history", self._where(kind, a), iso(first))  # fmt: skip
        return False

    def _pages(self, kind: SeriesKind, timeframe: str, step: int, lo: int,
               hi: int) -> Iterator[tuple[np.ndarray, int]]:  # fmt: skip
        """(rows inside [lo, hi), how far the span is covered) per answer, oldest first."""
        limit = self.quirks.funding_limit if kind == "funding" else self.quirks.candle_limit
        now = self.now_ms()
        # A bar is final once it has closed; a funding rate once its time has passed.
        settle = 0 if kind == "funding" else step
        cursor = lo
        while cursor < hi:
            window_end = min(cursor + limit * step, hi)
            got = self._window(kind, timeframe, cursor, window_end, limit, now - settle)
            inside = got[(got[:, 0] >= lo) & (got[:, 0] < hi)] if len(got) else got
            if len(inside):
                yield inside, window_end
            fresh = got[got[:, 0] >= cursor] if len(got) else got
            if not len(fresh) and self.quirks.skips_empty and window_end < hi:
                ahead = self._fetch(kind, timeframe, window_end, None, limit)
                ahead = ahead[(ahead[:, 0] >= window_end) & (ahead[:, 0] < hi)] if len(ahead) else ahead
                ahead = ahead[ahead[:, 0] <= now - settle] if len(ahead) else ahead
                if not len(ahead):
                    return  # nothing at all after the cursor: the venue's history ends here
                # The answer only says where the data resumes; from there the windows are
                # asked for as usual (and checked for holes).
                cursor = window_end + (int(ahead[:, 0].min()) - window_end) // step * step
                continue
            if not len(fresh):
                cursor = window_end  # nothing in this window: before the listing, or a gap
                continue
            cursor = int(fresh[:, 0].max()) + (1 if kind == "funding" else step)

    def _window(self, kind: SeriesKind, timeframe: str, a: int, b: int, limit: int,
                final_before: int) -> np.ndarray:  # fmt: skip
        """Every row of [a, b) the venue has: asks again for the part before the earliest row
        received until the answer is empty or reaches ``a``."""
        parts: list[np.ndarray] = []
        top = b
        while top > a:
            page = self._fetch(kind, timeframe, a, top - 1, limit)
            page = page[page[:, 0] <= final_before] if len(page) else page
            parts.append(page)
            within = page[(page[:, 0] >= a) & (page[:, 0] < top)] if len(page) else page
            if not len(within):
                break
            # The venue may have sent the window's later rows only (newest first, or a short
            # page): the part before them is asked for again; an empty answer is a real gap.
            top = min(top, int(within[:, 0].min()))
        if not parts:
            return np.empty((0, 6))
        return np.concatenate(parts)

    def _fetch(self, kind: SeriesKind, timeframe: str, since: int, until: int | None,
               limit: int) -> np.ndarray:  # fmt: skip
        """One request, retried with backoff on 429, 5xx, timeouts and dropped connections."""
        import ccxt

        attempt = 0
        while True:
            self.requests += 1
            try:
                params: dict[str, Any] = {} if until is None else {"until": until}
                if kind == "funding":
                    raw = self.exchange.fetch_funding_rate_history(
                        self.symbol, since, limit, params
                    )
                    return _funding_rows(raw)
                if kind == "mark":
                    params["price"] = "mark"
                raw = self.exchange.fetch_ohlcv(self.symbol, timeframe, since, limit, params)
                return _candle_rows(raw, self._where(kind, since))
            except ccxt.NetworkError as err:  # 429 (DDoSProtection), 5xx, timeouts, resets
                attempt += 1
                if self.backoff.max_attempts is not None and attempt >= self.backoff.max_attempts:
                    raise DownloadError(
                        f"{self._where(kind, since)}: gave up after {attempt} attempts "
                        f"({describe(err)}); what was fetched is saved, run the same command "
                        "again to resume"
                    ) from err
                delay = self.backoff.delay(attempt, self._rng)
                if isinstance(err, ccxt.DDoSProtection):  # 429/418: the venue may say how long
                    wait = self._retry_after()
                    if wait is not None and wait > _LONGEST_WAIT_S:
                        raise DownloadError(
                            f"{self._where(kind, since)}: the venue asks to wait {wait:.0f} s "
                            "(a rate-limit ban); run the same command again after that"
                        ) from err
                    delay = max(delay, wait or 0.0)
                logger.warning("{}: {}; retrying in {:.1f}s", self._where(kind, since),
                               describe(err), delay)  # fmt: skip
                self.sleep(delay)
            except ccxt.BadSymbol as err:
                raise DownloadError(f"{self.exchange_id} has no market {self.symbol!r} "
                                    f"({describe(err)})") from err  # fmt: skip
            except ccxt.NotSupported as err:
                raise DownloadError(f"{self._where(kind, since)}: not supported by "
                                    f"{self.exchange_id} ({describe(err)})") from err  # fmt: skip
            except ccxt.ExchangeError as err:
                raise DownloadError(f"{self._where(kind, since)}: {describe(err)}") from err

    def _retry_after(self) -> float | None:
        """Seconds in the last answer's Retry-After header (Binance sends it with 429/418)."""
        headers: Any = getattr(self.exchange, "last_response_headers", None) or {}
        value = headers.get("Retry-After") if hasattr(headers, "get") else None
        try:
            return None if value is None else float(value)
        except (TypeError, ValueError):
            return None

    def _where(self, kind: str, at: int) -> str:
        return f"{self.exchange_id} {self.symbol} {kind} at {iso(at)}"

    # -- files --------------------------------------------------------------------------------

    def _write(self, plan: _Plan, rows: np.ndarray,
               pending: list[np.ndarray]) -> tuple[np.ndarray, int]:  # fmt: skip
        """Merge ``pending`` into ``rows`` (the file's rows win on equal times, later pages
        over earlier ones), write, check with the loader, rename; returns (rows, added)."""
        if not pending or not any(len(p) for p in pending):
            return rows, 0
        fresh = np.concatenate([p for p in pending if len(p)])
        # Stable sort then keep each time's last occurrence: existing rows are appended last.
        merged = np.concatenate([fresh, rows]) if len(rows) else fresh
        order = np.argsort(merged[:, 0], kind="stable")
        merged = merged[order]
        ts = merged[:, 0]
        keep = np.ones(len(merged), dtype=bool)
        keep[:-1] = ts[1:] != ts[:-1]
        merged = merged[keep]
        _atomic_write(plan.path, merged, plan.kind, self)
        return merged, len(merged) - len(rows)

    def _check(self, path: Path, kind: SeriesKind) -> Candles | FundingSeries:
        return load_funding(path) if kind == "funding" else load_candles(path)


def _funding_interval(ts: np.ndarray) -> int:
    return FundingSeries(ts, np.zeros(len(ts))).interval_ms if len(ts) > 1 else 0


def _candle_rows(raw: list[list[Any]], where: str) -> np.ndarray:
    if not raw:
        return np.empty((0, 6))
    try:
        arr = np.array([r[:6] for r in raw], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DownloadError(f"{where}: the venue sent a candle that is not numbers ({err})") from err
    if arr.ndim != 2 or arr.shape[1] != 6:
        raise DownloadError(f"{where}: the venue sent candles of {arr.shape[-1]} fields, not 6")
    return arr


def _funding_rows(raw: list[dict[str, Any]]) -> np.ndarray:
    rows = [(r["timestamp"], r["fundingRate"], 0.0, 0.0, 0.0, 0.0) for r in raw]
    return np.array(rows, dtype=np.float64) if rows else np.empty((0, 6))


def _frame(rows: np.ndarray) -> pd.DataFrame:
    ts = rows[:, 0].astype(np.int64)
    return pd.DataFrame({
        "date": pd.to_datetime(ts, unit="ms", utc=True).as_unit("ns"),
        "open": rows[:, 1], "high": rows[:, 2], "low": rows[:, 3], "close": rows[:, 4],
        "volume": rows[:, 5],
    })  # fmt: skip


def _read_existing(path: Path, kind: SeriesKind) -> np.ndarray | None:
    """The file's rows, checked by the loader; a file that fails the checks is an error (it is
    never overwritten blindly)."""
    if not path.is_file():
        return None
    try:
        if kind == "funding":
            fs = load_funding(path)
            return np.column_stack([fs.ts.astype(np.float64), fs.rate, *([np.zeros(len(fs))] * 4)])
        c = load_candles(path)
    except DataError as err:
        raise DownloadError(
            f"the existing file fails the data checks, so it is not extended: {err}. "
            "Fix or delete it, then run the download again"
        ) from err
    return np.column_stack([c.ts.astype(np.float64), c.open, c.high, c.low, c.close, c.volume])


def _part_path(path: Path, pid: int) -> Path:
    return path.with_name(f".{path.name}.{pid}.part")


def _remove_stale_parts(path: Path) -> None:
    """Temporary files left by a download that was killed while writing (its pid is gone)."""
    for part in path.parent.glob(f".{path.name}.*.part"):
        pid = part.name.removesuffix(".part").rpartition(".")[2]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        logger.info("removing {} left by an interrupted download", part)
        part.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _atomic_write(path: Path, rows: np.ndarray, kind: SeriesKind, owner: Downloader) -> None:
    """Write next to ``path``, check the temporary file with the loader, fsync, rename, fsync
    the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _part_path(path, os.getpid())
    try:
        _frame(rows).to_feather(tmp, compression="lz4")
        # The loader's notes (gaps) are logged once, for the finished file, not per write.
        for module in _LOADER_MODULES:
            logger.disable(module)
        try:
            owner._check(tmp, kind)
        except DataError as err:
            raise DownloadError(
                f"{owner.exchange_id} {owner.symbol} {kind}: the downloaded data fails the "
                f"checks, {path} is left as it was: {err}"
            ) from err
        finally:
            for module in _LOADER_MODULES:
                logger.enable(module)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the rename itself survives a power cut
        finally:
            os.close(folder)
    finally:
        tmp.unlink(missing_ok=True)
