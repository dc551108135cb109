"""``report.html``: a self-contained, interactive page built from a backtest output folder.

It reads only the folder's files (summary.json, fills.csv, equity.csv, orders.csv when present)
and embeds plotly.js, so the page opens offline. Price and equity lines are downsampled to at
most ``MAX_LINE_POINTS`` points each (the minimum and the maximum of every bucket are kept, so
peaks and troughs survive); fills are never dropped.

Each chart is a ``<div>`` with a stable id (``chart-price``, ``chart-equity``,
``chart-drawdown``, ``chart-phases`` and, for grid-hedge wallets, ``chart-hedge-ratio`` and
``chart-hedge-equity``); its figure is stored as JSON in ``<script type="application/json"
id="<chart id>-data">`` and drawn by a few lines of script at the end of the page.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hedgekit.core.errors import HedgekitError
from hedgekit.report.cycles import CYCLE_COLUMNS, run_cycles
from hedgekit.report.figures import (
    CHART_IDS,
    CYCLE_CHART_IDS,
    HEDGE_CHART_IDS,
    MAX_LINE_POINTS,
    downsample_minmax,
    fill_kinds,
    money_totals,
    report_figures,
    unit_levels,
)
from hedgekit.report.metrics import (
    compute_run_metrics,
    time_ordered,
    to_epoch_ms,
    wide_curves,
)
from hedgekit.report.page import page_head, render_page
from hedgekit.report.style import KIND_STYLES, kind_style, phase_color, phase_order, wallet_colors

# The page is built in report.figures (charts) and report.page (tables, HTML); this module
# reads the folder and re-exports what callers of the report use.
__all__ = [
    "CHART_IDS",
    "CYCLE_CHART_IDS",
    "HEDGE_CHART_IDS",
    "KIND_STYLES",
    "MAX_LINE_POINTS",
    "ReportError",
    "RunOutput",
    "build_report",
    "downsample_minmax",
    "fill_kinds",
    "kind_style",
    "load_output",
    "money_totals",
    "page_head",
    "phase_color",
    "phase_order",
    "unit_levels",
    "wallet_colors",
]


EQUITY_CHUNK_ROWS = 1 << 17  # rows of equity.csv parsed at a time


class ReportError(HedgekitError):
    """The output folder cannot be turned into a report (missing or malformed file)."""


# --------------------------------------------------------------------------- loading


@dataclass(slots=True)
class RunOutput:
    """An output folder, parsed: frames carry a ``ts`` column (epoch ms, UTC)."""

    folder: Path
    summary: dict
    fills: pd.DataFrame
    orders: pd.DataFrame | None
    equity: pd.DataFrame
    wallets: list[str]
    times: np.ndarray  # sorted unique equity timestamps (ms)
    price: np.ndarray  # close at each of ``times``
    eq_wide: pd.DataFrame  # equity per wallet, indexed by ``times``
    end_ms: int  # end of the last bar
    metrics: dict = field(default_factory=dict)
    cycles: pd.DataFrame | None = None  # cycles.csv (or recomputed from fills.csv)
    cycles_source: str = ""  # "cycles.csv", or "fills.csv" when the folder has no cycles.csv

    @property
    def symbol(self) -> str:
        return str(((self.summary.get("config") or {}).get("instrument") or {}).get("symbol") or "price")

    @property
    def hedge_wallets(self) -> list[str]:
        if "hedge_ratio" not in self.equity:
            return []
        has = set(self.equity.loc[self.equity["hedge_ratio"].notna(), "wallet"].astype(str).unique())
        return [w for w in self.wallets if w in has]


# Columns that must hold numbers (blank allowed): a hand-edited file is checked cell by cell, so
# the error names the row and column instead of failing deep inside pandas.
_NUMERIC = {
    "fills.csv": ("qty", "price", "fee", "position", "realized_pnl"),
    "equity.csv": ("equity", "position", "price", "spot_equity", "hedged_equity", "unhedged_equity", "hedge_ratio"),
    "orders.csv": ("qty", "trigger_price"),
    "cycles.csv": ("cycle", "start_price", "end_price", "fills", "long_legs", "short_legs", "reentry_gap",
                   "realized_pnl", "fees", "funding", "net_pnl"),
}


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ReportError(f"{path}: cannot read it ({err.strerror or err})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _not_utf8(path, raw) from None


def _check_utf8(path: Path, block: int = 1 << 20) -> None:
    """UTF-8 or a clear error, read a block at a time (no copy of a big file, bytes or text)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    lines = 0  # newlines before the block
    try:
        with path.open("rb") as fh:
            while True:
                data = fh.read(block)
                pending = decoder.getstate()[0]  # an incomplete character from the block before
                try:
                    decoder.decode(data, final=not data)
                except UnicodeDecodeError:
                    raise _not_utf8(path, pending + data, lines) from None
                if not data:
                    return
                lines += data.count(b"\n")
    except OSError as err:
        raise ReportError(f"{path}: cannot read it ({err.strerror or err})") from None


def _not_utf8(path: Path, raw: bytes, lines_before: int = 0) -> ReportError:
    """The error for ``raw`` (not UTF-8, from line ``lines_before + 1``): the line and the byte."""
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        raw.decode("utf-8")
        bad = 0  # (not reached: the caller's decoding failed)
    except UnicodeDecodeError as err:
        bad = err.start
    line = lines_before + raw[:bad].count(b"\n") + 1
    return ReportError(f"{path}: line {line}: byte 0x{raw[bad]:02x} is not UTF-8 text; the file was "
                       "edited or saved in another encoding: save it as UTF-8 or rewrite the folder "
                       f"with `hedgekit backtest --out {path.parent}`")


def _read_csv(path: Path, required: tuple[str, ...], dtype: dict[str, type] | None = None, *,
              chunk_rows: int | None = None, keep_timestamp: bool = True) -> pd.DataFrame:
    """The file's rows, numeric columns checked cell by cell and the times parsed into ``ts``.
    ``chunk_rows``: parsed and checked that many rows at a time (equity.csv: a year of 1m
    bars is ~1M rows, whose time strings are then never all held at once); without
    ``keep_timestamp`` only ``ts`` is kept of the times."""
    if not path.is_file():
        raise ReportError(f"{path}: file not found; write the folder first with "
                          f"`hedgekit backtest --out {path.parent}`")
    _check_utf8(path)
    parts: list[pd.DataFrame] = []
    rows = 0
    for df in _parsed(path, dtype or {"wallet": str, "order_id": str, "kind": str, "phase": str}, chunk_rows):
        if not parts:
            missing = [c for c in required if c not in df.columns]
            if missing:
                raise ReportError(f"{path}: missing column(s) {', '.join(missing)}; "
                                  f"found {', '.join(map(str, df.columns))}")
        parts.append(_checked(path, df, rows, keep_timestamp))
        rows += len(df)
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def _parsed(path: Path, dtype: dict[str, type], chunk_rows: int | None) -> Iterator[pd.DataFrame]:
    """The file's rows as the parser gives them (``chunk_rows`` at a time, or all at once)."""
    try:
        if not chunk_rows:
            yield pd.read_csv(path, encoding="utf-8-sig", dtype=dtype)
            return
        with pd.read_csv(path, encoding="utf-8-sig", dtype=dtype, chunksize=chunk_rows) as reader:
            yield from reader
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise ReportError(f"{path}: not a readable CSV ({reason})") from None


def _checked(path: Path, df: pd.DataFrame, first_row: int, keep_timestamp: bool) -> pd.DataFrame:
    """``df`` (the file's rows from data row ``first_row + 1``) with its numeric columns checked
    and its times in ``ts``."""
    for col in _NUMERIC.get(path.name, ()):
        if col in df.columns and df[col].dtype.kind not in "iuf":
            values = pd.to_numeric(df[col], errors="coerce")
            _first_bad(path, df, col, values.isna() & df[col].notna(), "is not a number", first_row)
            df[col] = values
    if "timestamp" in df.columns:
        df["ts"] = _timestamps(path, df, first_row)
        if not keep_timestamp:
            df = df.drop(columns="timestamp")
    return df


def _first_bad(path: Path, df: pd.DataFrame, col: str, bad: pd.Series, problem: str, first_row: int = 0) -> None:
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        row = first_row + i + 1
        raise ReportError(f"{path}: data row {row} (line {row + 1}), column {col}: {str(df[col].iloc[i])[:40]!r} "
                          f"{problem}; fix the cell or rewrite the folder with `hedgekit backtest --out {path.parent}`")


def _timestamps(path: Path, df: pd.DataFrame, first_row: int = 0) -> np.ndarray:
    if not len(df):
        return np.empty(0, dtype=np.int64)
    try:
        return to_epoch_ms(df["timestamp"])
    except (ValueError, TypeError, OverflowError):
        parsed = pd.to_datetime(df["timestamp"].astype(str), utc=True, format="ISO8601", errors="coerce")
        _first_bad(path, df, "timestamp", pd.Series(parsed.isna().to_numpy()), "is not an ISO-8601 time", first_row)
        raise ReportError(f"{path}: column timestamp: cannot read the times as ISO-8601") from None


def load_output(out_dir: str | Path) -> RunOutput:
    """Read a backtest output folder (summary.json, fills.csv, equity.csv, orders.csv if any)."""
    folder = Path(out_dir)
    spath = folder / "summary.json"
    if not spath.is_file():
        raise ReportError(f"{spath}: file not found; write the folder first with "
                          f"`hedgekit backtest --out {folder}`")
    try:
        summary = json.loads(_read_text(spath))
    except json.JSONDecodeError as err:
        raise ReportError(f"{spath}: not valid JSON ({err})") from None
    if not isinstance(summary, dict):
        raise ReportError(f"{spath}: expected a JSON object of the run's summary, found {type(summary).__name__}")
    fills = _read_csv(folder / "fills.csv", ("timestamp", "wallet", "kind", "side", "qty", "price",
                                             "fee", "unit", "phase", "position", "realized_pnl"))
    equity = _read_csv(folder / "equity.csv", ("timestamp", "wallet", "equity", "position", "price"),
                       chunk_rows=EQUITY_CHUNK_ROWS, keep_timestamp=False)
    if len(equity) == 0:
        raise ReportError(f"{folder / 'equity.csv'}: no rows; nothing to report")
    opath = folder / "orders.csv"
    orders = _read_csv(opath, ("timestamp", "wallet", "event", "kind", "trigger_price", "unit")) \
        if opath.is_file() else None
    fills = _by_time(fills)
    equity = _by_time(equity)

    names = list(summary.get("wallets") or {})
    names += [w for w in pd.unique(equity["wallet"].astype(str)) if w not in names]
    names = [w for w in names if (equity["wallet"] == w).any()]
    curves = wide_curves(equity)  # once, for the charts and the metrics
    times = curves.times
    step = int(np.median(np.diff(times))) if times.size > 1 else 60_000
    run = RunOutput(folder, summary, fills, orders, equity, names, times, curves.price,
                    curves.equity[names], int(times[-1]) + step)
    run.metrics = compute_run_metrics(equity, fills, summary, curves)
    run.cycles, run.cycles_source = _load_cycles(folder, fills, summary)
    return run


def _by_time(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` sorted by ``ts`` (stable); a file written in time order is taken as it is (a year
    of equity rows is not copied)."""
    if time_ordered(df["ts"].to_numpy()):
        return df
    return df.sort_values("ts", kind="stable").reset_index(drop=True)


def _load_cycles(folder: Path, fills: pd.DataFrame, summary: dict) -> tuple[pd.DataFrame, str]:
    """cycles.csv as written by the backtest; a folder without it (written before it existed)
    gets the same table recomputed from fills.csv, with the funding per cycle unknown (NaN)."""
    path = folder / "cycles.csv"
    if path.is_file():
        df = _read_csv(path, tuple(CYCLE_COLUMNS),
                       {"wallet": str, "strategy": str, "phases": str, "ended_by": str})
        return df, "cycles.csv"
    return run_cycles(fills, None, summary), "fills.csv"


def build_report(out_dir: str | Path, run: RunOutput | None = None) -> Path:
    """Write ``out_dir/report.html`` from the files of a backtest output folder (``run``: the
    folder as ``load_output`` read it, when the caller has it); returns its path."""
    run = run if run is not None else load_output(out_dir)
    colors = wallet_colors(run.wallets)
    figs, money = report_figures(run, colors)
    path = Path(out_dir) / "report.html"
    path.write_text(render_page(run, figs, money, colors), encoding="utf-8")
    return path
