"""A backtest's result built from the engine's run: the frames, summary.json and its
``data_quality`` block. Here, not in ``report``, because it reads the engine's live objects
(runners, venues, strategies); ``report`` reads only the result."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from hedgekit.config import BacktestConfig
from hedgekit.engine.backtest import EngineRun, WalletRun, gc_paused
from hedgekit.engine.checks import StartChecks
from hedgekit.feeds.history import Candles
from hedgekit.report.metrics import WalletSeries, hedge_curves, hedge_metrics, run_metrics
from hedgekit.report.results import (
    ORDER_COLUMNS,
    BacktestResult,
    _frame,
    fills_frame,
    iso_ms,
    unit_str,
)


def build_result(
    cfg: BacktestConfig, candles: Candles, run: EngineRun, funding_source: str, *, warmup_bars: int = 0,
    frames: bool = True,
) -> BacktestResult:
    """``frames=False`` (a sweep trial, which keeps only the summary) leaves ``fills`` and
    ``orders`` empty; the summary is the same."""
    wallets = run.wallets if frames else []

    # Built on first use (see BacktestResult), from every record the run kept: no GC passes.
    def fills() -> pd.DataFrame:
        with gc_paused():
            return fills_frame((w.name, w.venue, w.runner.log) for w in wallets)

    def orders() -> pd.DataFrame:
        with gc_paused():
            return orders_frame(wallets)

    summary = summarize(cfg, candles, run, funding_source)
    summary["data"]["warmup_bars"] = warmup_bars
    return BacktestResult(cfg, fills, orders, summary, run, partial(equity_frame, run), len(run.bars))


def orders_frame(wallets: list[WalletRun]) -> pd.DataFrame:
    """orders.csv's rows (``ORDER_COLUMNS``) from the wallets' venue order logs, in time order."""
    oc: dict[str, list] = {c: [] for c in ORDER_COLUMNS}
    for w in wallets:
        log = w.venue.order_log
        oc["timestamp"] += [o.ts for o in log]
        oc["wallet"] += [w.name] * len(log)
        oc["order_id"] += [o.order_id for o in log]
        oc["event"] += [o.event for o in log]
        oc["kind"] += [str(o.kind) for o in log]
        oc["side"] += [str(o.side) for o in log]
        oc["qty"] += [o.qty for o in log]
        oc["trigger_price"] += [o.trigger_price for o in log]
        oc["unit"] += [unit_str(o.unit) for o in log]
    orders = _frame(oc, ORDER_COLUMNS)
    # Stable sort by time keeps each wallet's own order within a timestamp.
    orders = orders.sort_values("timestamp", kind="stable").reset_index(drop=True)
    orders["timestamp"] = iso_ms(orders["timestamp"].to_numpy(dtype=np.int64))
    return orders


def equity_frame(run: EngineRun, start: int = 0, stop: int | None = None) -> pd.DataFrame:
    """equity.csv's rows (full precision) of the bars ``start:stop``, all wallets interleaved
    bar by bar (row = bar * wallets + wallet)."""
    bars = run.bars
    span = slice(start, stop)
    ts = bars.ts[span]
    n = len(ts)
    k = len(run.wallets)

    def stack(arrays: list[np.ndarray]) -> np.ndarray:
        return np.column_stack(arrays).ravel()

    close = bars.close[span]
    frame = pd.DataFrame({
        "timestamp": np.repeat(_iso_objects(ts), k),
        "wallet": np.tile(np.array([w.name for w in run.wallets], dtype=object), n),
        "equity": stack([w.equity[span] for w in run.wallets]),
        "position": stack([w.position[span] for w in run.wallets]),
        "price": np.repeat(close, k),
    })
    spots = [spot_curves(w, close, span) for w in run.wallets]
    if any(sp is not None for sp in spots):
        nan = np.full(n, np.nan)
        for col in ("spot_equity", "hedged_equity", "unhedged_equity", "hedge_ratio"):
            frame[col] = stack([sp[col] if sp is not None else nan for sp in spots])
    return frame


def _iso_objects(ts: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """``iso_ms(ts)`` as an object array, converted a chunk at a time: the wallets' rows then
    share one string per bar, and a year of 1m bars never holds a whole fixed-width string
    array (or one per wallet) beside it (~300 MB less at the peak)."""
    out = np.empty(len(ts), dtype=object)
    for i in range(0, len(ts), chunk):
        out[i:i + chunk] = iso_ms(ts[i:i + chunk])
    return out


def _spot_quantity(w) -> float | None:
    """The hedged spot holding of a grid hedge; None for any other strategy."""
    if w.strategy.name != "grid_hedge":
        return None
    return getattr(getattr(w.strategy, "params", None), "spot_quantity", None)


def spot_curves(w, close: np.ndarray, span: slice = slice(None)) -> dict[str, np.ndarray] | None:
    """For a grid hedge, at the bars ``span`` (``close`` their closes): the spot holding's
    value, futures + spot (hedged) and the same capital without the futures trading
    (unhedged), and |futures| / spot."""
    spot_qty = _spot_quantity(w)
    if spot_qty is None:
        return None
    return hedge_curves(spot_qty, close, w.equity[span], w.position[span], w.venue.config.initial_cash)


def hedge_summary(w, bars, bar_ms: int) -> dict | None:
    spot_qty = _spot_quantity(w)
    if spot_qty is None:
        return None
    return hedge_metrics(spot_qty, float(bars.open[0]), bars.close, w.equity, w.position,
                         w.venue.config.initial_cash, [str(f.kind) for f in w.venue.fills], bar_ms)


def stop_status(w) -> dict:
    """``status`` (running / stopped), ``stop_reason`` and, after a drawdown stop, its figures."""
    guard = w.guard
    out: dict = {"status": "stopped" if w.strategy.stopped else "running", "stop_reason": None}
    if guard is not None and guard.stop is not None:
        out["stop_reason"] = "max_drawdown"
        out["drawdown_stop"] = guard.stop.as_dict()
    elif w.venue.liquidated:
        out["stop_reason"] = "liquidated"
    return out


def engine_metrics(cfg: BacktestConfig | None, run: EngineRun, end_ms: int) -> dict[str, dict]:
    """``report.metrics.run_metrics`` of the engine's curves (every bar, full precision), with
    each wallet's phase log; without ``cfg``, no buy and hold."""
    bars = run.bars
    wallets = []
    for i, w in enumerate(run.wallets):
        wc = cfg.wallets[i] if cfg is not None else None
        spans = w.runner.log.phases
        wallets.append(WalletSeries(
            w.name, w.equity, w.position, start_equity=float(w.venue.config.initial_cash),
            leverage=wc.leverage if wc is not None else 1.0, strategy=wc.strategy if wc is not None else None,
            phase_changes=(np.array([p.ts for p in spans], dtype=np.int64), np.array([str(p.phase) for p in spans], dtype=str)),
        ))
    if cfg is None:
        return run_metrics(bars.ts, None, wallets, end_ms=end_ms, full=False)
    costs = {"maintenance_margin_rate": cfg.venue.maintenance_margin_rate, "taker_fee": cfg.venue.taker_fee}
    return run_metrics(bars.ts, bars.close, wallets, first_price=float(bars.open[0]), bh_costs=costs, end_ms=end_ms,
                       full=False)


def summarize(cfg: BacktestConfig, candles: Candles, run: EngineRun, funding_source: str) -> dict:
    """summary.json. Its statistics come from ``engine_metrics`` (the report's own function);
    the account figures (fees, funding, realized PnL) from the venue."""
    bars = run.bars
    first_px, last_px = float(bars.open[0]), float(bars.close[-1])
    end_ts = int(bars.ts[-1]) + int(getattr(candles, "timeframe_ms", 0) or 0)
    metrics = engine_metrics(cfg, run, end_ts)
    wallets: dict[str, dict[str, Any]] = {}
    total_start = 0.0
    for w, wc in zip(run.wallets, cfg.wallets, strict=True):
        m = metrics["wallets"][w.name]
        start_eq = float(w.venue.config.initial_cash)
        total_start += start_eq
        wallets[w.name] = {
            "strategy": wc.strategy,
            "start_equity": round(start_eq, 2),
            "end_equity": round(float(w.equity[-1]), 2),
            "return_pct": round(m["return_pct"], 4),
            "max_drawdown_pct": round(m["max_drawdown_pct"], 4),
            "realized_pnl": round(w.venue.realized_pnl, 2),
            "fees": round(w.venue.fees_paid, 2),
            "funding": round(w.venue.funding_paid, 2),
            "fills": w.venue.fill_count,
            "resets": int(getattr(w.strategy, "resets", 0)),
            "final_phase": str(w.strategy.phase),
            "final_position": w.venue.position.qty,
            "liquidated": bool(w.venue.liquidated),
            "time_in_phase_pct": m["time_in_phase_pct"],
            "time_in_phase_hours": m["time_in_phase_hours"],
            # Same capital, same leverage, liquidated like the venue would (never below -100 %).
            "buy_and_hold_return_pct": round(float(m["buy_and_hold_return_pct"]), 4),
            "buy_and_hold_1x_return_pct": round(float(m["buy_and_hold_1x_return_pct"]), 4),
            "warnings": [msg for _, msg in w.runner.log.warnings][:50],
        }
        wallets[w.name].update(stop_status(w))
        hedge = hedge_summary(w, bars, int(getattr(candles, "timeframe_ms", 0) or 0))
        if hedge is not None:
            wallets[w.name]["hedge"] = hedge
    t = metrics["total"]
    total = {
        "start_equity": round(total_start, 2),
        "end_equity": round(sum(float(w.equity[-1]) for w in run.wallets), 2),
        "return_pct": round(t["return_pct"], 4),
        "max_drawdown_pct": round(t["max_drawdown_pct"], 4),
        "fees": round(sum(w.venue.fees_paid for w in run.wallets), 2),
        "funding": round(sum(w.venue.funding_paid for w in run.wallets), 2),
        "fills": sum(w.venue.fill_count for w in run.wallets),
        "resets": sum(int(getattr(w.strategy, "resets", 0)) for w in run.wallets),
        # Each wallet's buy-and-hold at its own leverage, weighted by its capital.
        "buy_and_hold_return_pct": round(
            sum(w["buy_and_hold_return_pct"] * w["start_equity"] for w in wallets.values()) / total_start, 4
        ),
        "buy_and_hold_1x_return_pct": round(float(t["buy_and_hold_1x_return_pct"]), 4),
    }
    return {
        "data": {
            "file": str(candles.path),
            "sha256": candles.sha256,
            "bars": len(bars),
            "start": str(iso_ms([int(bars.ts[0])])[0]),
            "end": str(iso_ms([int(bars.ts[-1])])[0]),
            "first_price": first_px,
            "last_price": last_px,
            "funding": funding_source,
            # Bad prints the loader dropped or clipped (data.on_spike): never silent.
            "bad_prints": {
                "policy": cfg.data.on_spike,
                "count": len(candles.spike_fixes),
                "first": [f.as_dict() for f in candles.spike_fixes[:10]],
            },
        },
        "wallets": wallets,
        "total": total,
        "engine": {
            "bars": run.stats.bars,
            "stepped_bars": run.stats.stepped_bars,
            "strategy_events": run.stats.strategy_events,
        },
        "config": cfg.model_dump(mode="json"),
    }



OPPOSITE_PATH = ("open -> high -> low -> close for a bar that closes up, "
                 "open -> low -> high -> close otherwise (the main run walks the other way)")


def headline(run: EngineRun) -> dict:
    """Return, max drawdown and fills per wallet and in total, as the main summary has them."""
    m = engine_metrics(None, run, int(run.bars.ts[-1]))
    wallets = {
        w.name: {
            "return_pct": round(m["wallets"][w.name]["return_pct"], 4),
            "max_drawdown_pct": round(m["wallets"][w.name]["max_drawdown_pct"], 4),
            "fills": w.venue.fill_count,
        }
        for w in run.wallets
    }
    return {
        "wallets": wallets,
        "total": {
            "return_pct": round(m["total"]["return_pct"], 4),
            "max_drawdown_pct": round(m["total"]["max_drawdown_pct"], 4),
            "fills": sum(w["fills"] for w in wallets.values()),
        },
    }


def data_quality(checks: StartChecks, opposite: EngineRun | None) -> dict:
    return {
        "coarse_bars": {c.wallet: c.as_dict() for c in checks.coarse},
        "unit_vs_fee": {f.wallet: f.as_dict() for f in checks.fees},
        "opposite_intrabar": None if opposite is None else {"path": OPPOSITE_PATH, **headline(opposite)},
        "warnings": checks.warnings,
    }


__all__ = ["OPPOSITE_PATH", "data_quality", "headline"]
