"""Backtest results as objects (frames + summary) and the output folder they are written to.

Values are kept at full precision in memory; rounding to the instrument's tick/lot (prices,
sizes) and to cents/8 decimals (money) happens only when written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from hedgekit.config import BacktestConfig
from hedgekit.report.cycles import MONEY_COLUMNS, run_cycles

FILL_COLUMNS = [
    "timestamp", "wallet", "order_id", "kind", "side", "qty", "price", "fee", "unit",
    "phase", "position", "realized_pnl",
]
ORDER_COLUMNS = ["timestamp", "wallet", "order_id", "event", "kind", "side", "qty", "trigger_price", "unit"]
EQUITY_COLUMNS = ["timestamp", "wallet", "equity", "position", "price"]
FUNDING_COLUMNS = ["timestamp", "wallet", "rate", "mark_price", "amount"]
MONEY_DECIMALS = 8
EQUITY_CHUNK_BARS = 1 << 16  # bars per slice of equity.csv written at a time


def iso_ms(ts: np.ndarray | list[int]) -> np.ndarray:
    """ms epoch -> ISO-8601 UTC strings with milliseconds ('2025-05-04T00:01:00.000Z')."""
    arr = np.asarray(ts, dtype="datetime64[ms]")
    return np.char.add(np.datetime_as_string(arr, unit="ms"), "Z")


@dataclass
class BacktestResult:
    config: BacktestConfig
    fills_frame: Callable[[], pd.DataFrame]  # builds ``fills`` on first use
    orders_frame: Callable[[], pd.DataFrame]  # builds ``orders`` on first use
    summary: dict
    engine: Any  # the engine's run (engine.backtest.EngineRun): its wallets' live objects
    # equity.csv's rows of the bars [start, stop) (a year of 1m bars is ~1M rows: built a
    # slice at a time when written, whole only when ``equity`` is read)
    equity_frame: Callable[[int, int | None], pd.DataFrame]
    bars: int

    # The frames are built when first read, not with the result: a run whose caller keeps
    # only the summary (a sweep, a benchmark) skips their cost (~15 % of a fast-path run).
    @cached_property
    def fills(self) -> pd.DataFrame:
        """fills.csv's rows (``FILL_COLUMNS``), in time order."""
        return self.fills_frame()

    @cached_property
    def orders(self) -> pd.DataFrame:
        """orders.csv's rows (``ORDER_COLUMNS``), in time order."""
        return self.orders_frame()

    @cached_property
    def equity(self) -> pd.DataFrame:
        """Every bar, all wallets interleaved bar by bar."""
        return self.equity_frame(0, None)

    @cached_property
    def funding(self) -> pd.DataFrame:
        """Every funding payment of every wallet (``FUNDING_COLUMNS``; amount credited, negative
        when paid), in time order."""
        return funding_frame((w.name, w.venue) for w in self.engine.wallets)

    @cached_property
    def cycles(self) -> pd.DataFrame:
        """cycles.csv: realized PnL per wallet and RESET cycle split into long legs, short legs
        and the re-entry gap, with fees and funding (``hedgekit.report.cycles``)."""
        return run_cycles(self.fills, self.funding, self.summary)

    def write(self, out: str | Path, *, equity_every: int | None = None) -> Path:
        """Write fills.csv, orders.csv, equity.csv, cycles.csv and summary.json into ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        inst = self.config.instrument_model()
        pd_, qd = inst.price_decimals, inst.qty_decimals + 4
        _csv(self.fills, out / "fills.csv", {"qty": qd, "price": pd_, "fee": MONEY_DECIMALS,
                                             "position": qd, "realized_pnl": MONEY_DECIMALS})
        _csv(self.orders, out / "orders.csv", {"qty": qd, "trigger_price": pd_})
        every = equity_every or self.config.equity_every
        n_wallets = max(len(self.config.wallets), 1)
        with open(out / "equity.csv", "w", encoding="utf-8", newline="") as fh:
            # A slice of bars at a time: the whole frame (and its rounded copy) is ~150 MB
            # on a year of 1m bars; the bytes are the same.
            for start in range(0, max(self.bars, 1), EQUITY_CHUNK_BARS):
                eq = self.equity_frame(start, start + EQUITY_CHUNK_BARS)
                if every > 1:
                    bar = start + np.arange(len(eq)) // n_wallets
                    eq = eq[(bar % every == 0) | (bar == self.bars - 1)]
                _csv(eq, fh, {"equity": MONEY_DECIMALS, "position": qd, "price": pd_}, header=start == 0)
        _csv(self.cycles, out / "cycles.csv", {"start_price": pd_, "end_price": pd_,
                                              **dict.fromkeys(MONEY_COLUMNS, MONEY_DECIMALS)})
        (out / "summary.json").write_text(json.dumps(self.summary, indent=2, default=str) + "\n")
        return out


def _csv(df: pd.DataFrame, path: Path | TextIO, decimals: dict[str, int], *, header: bool = True) -> None:
    """Write ``df`` to ``path`` (or append it to an open file), ``decimals`` columns rounded."""
    df = df.copy()
    for col, d in decimals.items():
        if col in df and len(df):
            df[col] = df[col].astype(float).round(d)
            # -0.0 is the same number as 0.0; print it once, one way.
            df.loc[df[col] == 0, col] = 0.0
    df.to_csv(path, index=False, header=header, lineterminator="\n")


def unit_str(unit: int | None) -> str:
    return "" if unit is None else str(unit)


def fills_frame(wallets) -> pd.DataFrame:
    """fills.csv's rows (``FILL_COLUMNS``, full precision) from ``(name, venue, runner log)``
    triples, in time order (stable: each wallet's own order within a timestamp)."""
    # Built column by column (a list per column, not a tuple per row): a backtest logs tens
    # of thousands of order events, and this is measurably quicker for pandas too.
    fc: dict[str, list] = {c: [] for c in FILL_COLUMNS}
    for name, venue, log in wallets:
        phases = log.fill_phase
        fills = venue.fills
        fc["timestamp"] += [f.ts for f in fills]
        fc["wallet"] += [name] * len(fills)
        fc["order_id"] += [f.order_id for f in fills]
        fc["kind"] += [str(f.kind) for f in fills]
        fc["side"] += [str(f.side) for f in fills]
        fc["qty"] += [f.qty for f in fills]
        fc["price"] += [f.price for f in fills]
        fc["fee"] += [f.fee for f in fills]
        fc["unit"] += [unit_str(f.unit) for f in fills]
        fc["phase"] += [str(phases.get(f.fill_id, "")) for f in fills]
        fc["position"] += [f.position_after for f in fills]
        fc["realized_pnl"] += [f.realized_pnl_cum for f in fills]
    fills = _frame(fc, FILL_COLUMNS)
    fills = fills.sort_values("timestamp", kind="stable").reset_index(drop=True)
    fills["timestamp"] = iso_ms(fills["timestamp"].to_numpy(dtype=np.int64))
    return fills


def funding_frame(wallets) -> pd.DataFrame:
    """Funding payments (``FUNDING_COLUMNS``) from ``(name, venue)`` pairs, in time order."""
    rows = [(p.ts, name, p.rate, p.mark_price, p.amount) for name, venue in wallets for p in venue.funding_log]
    df = pd.DataFrame(rows, columns=FUNDING_COLUMNS)
    df = df.sort_values("timestamp", kind="stable").reset_index(drop=True)
    df["timestamp"] = iso_ms(df["timestamp"].to_numpy(dtype=np.int64))
    return df


def _frame(columns: dict[str, list], names: list[str]) -> pd.DataFrame:
    if not columns[names[0]]:
        return pd.DataFrame([], columns=names)  # no rows: untyped (object) columns
    return pd.DataFrame(columns, columns=names)


def export_run(journal, run_id: int, cfg: BacktestConfig, out: str | Path) -> Path:
    """fills.csv and orders.csv of a journaled (PAPER/RECOMMENDATION) run, in the backtest's
    format, so the two can be compared file to file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fills_rows, order_rows = [], []
    for w in cfg.wallets:
        for f in journal.fills(run_id, w.name):
            fills_rows.append((f.ts, w.name, f.client_id, f.kind, f.side, f.qty, f.price, f.fee,
                               unit_str(f.unit), f.phase or "", f.position, f.realized_pnl))
        for e in journal.order_events(run_id, w.name):
            order_rows.append((e.ts, w.name, e.client_id, e.event, e.kind, e.side, e.qty,
                               e.trigger, unit_str(e.unit)))
    fills = pd.DataFrame(fills_rows, columns=FILL_COLUMNS).sort_values("timestamp", kind="stable")
    orders = pd.DataFrame(order_rows, columns=ORDER_COLUMNS).sort_values("timestamp", kind="stable")
    fills["timestamp"] = iso_ms(fills["timestamp"].to_numpy(dtype=np.int64))
    orders["timestamp"] = iso_ms(orders["timestamp"].to_numpy(dtype=np.int64))
    inst = cfg.instrument_model()
    pd_, qd = inst.price_decimals, inst.qty_decimals + 4
    _csv(fills, out / "fills.csv", {"qty": qd, "price": pd_, "fee": MONEY_DECIMALS,
                                    "position": qd, "realized_pnl": MONEY_DECIMALS})
    _csv(orders, out / "orders.csv", {"qty": qd, "trigger_price": pd_})
    return out
