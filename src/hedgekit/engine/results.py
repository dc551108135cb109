"""A backtest's result built from the engine's run: the frames, summary.json and its
``data_quality`` block. Here, not in ``report``, because it reads the engine's live objects
(runners, venues, strategies); ``report`` reads only the result."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hedgekit.config import BacktestConfig
from hedgekit.engine.backtest import EngineRun, phase_durations
from hedgekit.engine.checks import StartChecks
from hedgekit.feeds.history import Candles
from hedgekit.report.metrics import buy_and_hold_curve, max_drawdown
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
    fills = fills_frame((w.name, w.venue, w.runner.log) for w in wallets)
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

    summary = summarize(cfg, candles, run, funding_source)
    summary["data"]["warmup_bars"] = warmup_bars
    return BacktestResult(cfg, fills, orders, summary, run, lambda: equity_frame(run))


def equity_frame(run: EngineRun) -> pd.DataFrame:
    bars = run.bars
    n = len(bars)
    k = len(run.wallets)

    def stack(arrays: list[np.ndarray]) -> np.ndarray:
        # Interleave wallets bar by bar: row = bar * k + wallet.
        return np.column_stack(arrays).ravel()

    frame = pd.DataFrame({
        "timestamp": np.repeat(iso_ms(bars.ts), k),
        "wallet": np.tile(np.array([w.name for w in run.wallets], dtype=object), n),
        "equity": stack([w.equity for w in run.wallets]),
        "position": stack([w.position for w in run.wallets]),
        "price": np.repeat(bars.close, k),
    })
    spots = [spot_curves(w, bars) for w in run.wallets]
    if any(sp is not None for sp in spots):
        nan = np.full(n, np.nan)
        for col in ("spot_equity", "hedged_equity", "unhedged_equity", "hedge_ratio"):
            frame[col] = stack([sp[col] if sp is not None else nan for sp in spots])
    return frame


def spot_curves(w, bars) -> dict[str, np.ndarray] | None:
    """For a grid hedge: the spot holding's value, futures + spot (hedged) and the same
    capital without the futures trading (unhedged), and |futures| / spot."""
    spot_qty = getattr(getattr(w.strategy, "params", None), "spot_quantity", None)
    if spot_qty is None or w.strategy.name != "grid_hedge":
        return None
    spot = spot_qty * bars.close
    start_cash = w.venue.config.initial_cash
    return {
        "spot_equity": spot,
        "hedged_equity": w.equity + spot,
        "unhedged_equity": start_cash + spot,
        "hedge_ratio": np.abs(w.position) / spot_qty,
    }


def _daily_vol(curve: np.ndarray, bar_ms: int) -> float:
    """Volatility of an equity curve's returns, scaled to one day."""
    if len(curve) < 3 or bar_ms <= 0:
        return 0.0
    r = np.diff(curve) / curve[:-1]
    return float(np.std(r, ddof=1) * np.sqrt(86_400_000 / bar_ms))


def hedge_summary(w, bars, bar_ms: int) -> dict | None:
    sp = spot_curves(w, bars)
    if sp is None:
        return None
    params = w.strategy.params
    spot_start = params.spot_quantity * float(bars.open[0])
    hedged, unhedged = sp["hedged_equity"], sp["unhedged_equity"]
    start = w.venue.config.initial_cash + spot_start
    kinds = [f.kind for f in w.venue.fills]
    ratio = sp["hedge_ratio"]
    return {
        "spot_quantity": params.spot_quantity,
        "spot_pnl": round(float(sp["spot_equity"][-1]) - spot_start, 2),
        "futures_pnl": round(float(w.equity[-1]) - w.venue.config.initial_cash, 2),
        "hedged_end_equity": round(float(hedged[-1]), 2),
        "unhedged_end_equity": round(float(unhedged[-1]), 2),
        "hedged_return_pct": round((float(hedged[-1]) / start - 1) * 100, 4),
        "unhedged_return_pct": round((float(unhedged[-1]) / start - 1) * 100, 4),
        "hedged_daily_volatility_pct": round(_daily_vol(hedged, bar_ms) * 100, 4),
        "unhedged_daily_volatility_pct": round(_daily_vol(unhedged, bar_ms) * 100, 4),
        "hedged_max_drawdown_pct": round(max_drawdown(np.concatenate([[start], hedged])) * 100, 4),
        "unhedged_max_drawdown_pct": round(max_drawdown(np.concatenate([[start], unhedged])) * 100, 4),
        "hedge_ratio_min": round(float(ratio.min()), 4),
        "hedge_ratio_mean": round(float(ratio.mean()), 4),
        "hedge_ratio_max": round(float(ratio.max()), 4),
        "stop_loss_events": sum(1 for k in kinds if str(k) == "hedge_stop_loss"),
        "take_profit_events": sum(1 for k in kinds if str(k) == "hedge_take_profit"),
    }


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


def summarize(cfg: BacktestConfig, candles: Candles, run: EngineRun, funding_source: str) -> dict:
    bars = run.bars
    first_px, last_px = float(bars.open[0]), float(bars.close[-1])
    end_ts = int(bars.ts[-1]) + int(getattr(candles, "timeframe_ms", 0) or 0)
    bh = (last_px / first_px - 1.0) * 100.0
    wallets: dict[str, dict[str, Any]] = {}
    total_start = total_end = 0.0
    total_curve = np.zeros(len(bars))
    for w, wc in zip(run.wallets, cfg.wallets, strict=True):
        start_eq = float(w.venue.config.initial_cash)
        end_eq = float(w.equity[-1])
        curve = w.equity
        total_curve += curve
        total_start += start_eq
        total_end += end_eq
        durations = phase_durations(w.runner.log.phases, end_ts)
        span = max(sum(durations.values()), 1)
        wallets[w.name] = {
            "strategy": wc.strategy,
            "start_equity": round(start_eq, 2),
            "end_equity": round(end_eq, 2),
            "return_pct": round((end_eq / start_eq - 1.0) * 100.0, 4),
            "max_drawdown_pct": round(max_drawdown(np.concatenate([[start_eq], curve])) * 100.0, 4),
            "realized_pnl": round(w.venue.realized_pnl, 2),
            "fees": round(w.venue.fees_paid, 2),
            "funding": round(w.venue.funding_paid, 2),
            "fills": len(w.venue.fills),
            "resets": int(getattr(w.strategy, "resets", 0)),
            "final_phase": str(w.strategy.phase),
            "final_position": w.venue.position.qty,
            "liquidated": bool(w.venue.liquidated),
            "time_in_phase_pct": {k: round(v / span * 100.0, 3) for k, v in durations.items()},
            "time_in_phase_hours": {k: round(v / 3_600_000, 3) for k, v in durations.items()},
            # Same capital, same leverage, liquidated like the venue would (never below -100 %).
            "buy_and_hold_return_pct": round((float(buy_and_hold_curve(
                bars.close, start_eq, wc.leverage, first_px,
                maintenance_margin_rate=cfg.venue.maintenance_margin_rate, taker_fee=cfg.venue.taker_fee,
            )[-1]) / start_eq - 1.0) * 100.0, 4),
            "buy_and_hold_1x_return_pct": round(bh, 4),
            "warnings": [msg for _, msg in w.runner.log.warnings][:50],
        }
        wallets[w.name].update(stop_status(w))
        hedge = hedge_summary(w, bars, int(getattr(candles, "timeframe_ms", 0) or 0))
        if hedge is not None:
            wallets[w.name]["hedge"] = hedge
    total = {
        "start_equity": round(total_start, 2),
        "end_equity": round(total_end, 2),
        "return_pct": round((total_end / total_start - 1.0) * 100.0, 4),
        "max_drawdown_pct": round(max_drawdown(np.concatenate([[total_start], total_curve])) * 100.0, 4),
        "fees": round(sum(w.venue.fees_paid for w in run.wallets), 2),
        "funding": round(sum(w.venue.funding_paid for w in run.wallets), 2),
        "fills": sum(len(w.venue.fills) for w in run.wallets),
        "resets": sum(int(getattr(w.strategy, "resets", 0)) for w in run.wallets),
        # Each wallet's buy-and-hold at its own leverage, weighted by its capital.
        "buy_and_hold_return_pct": round(
            sum(w["buy_and_hold_return_pct"] * w["start_equity"] for w in wallets.values()) / total_start, 4
        ),
        "buy_and_hold_1x_return_pct": round(bh, 4),
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
    wallets = {}
    start_total, total = 0.0, np.zeros(len(run.bars))
    for w in run.wallets:
        start = float(w.venue.config.initial_cash)
        start_total += start
        total += w.equity
        wallets[w.name] = {
            "return_pct": round((float(w.equity[-1]) / start - 1.0) * 100.0, 4),
            "max_drawdown_pct": round(max_drawdown(np.concatenate([[start], w.equity])) * 100.0, 4),
            "fills": len(w.venue.fills),
        }
    out = {
        "wallets": wallets,
        "total": {
            "return_pct": round((float(total[-1]) / start_total - 1.0) * 100.0, 4),
            "max_drawdown_pct": round(max_drawdown(np.concatenate([[start_total], total])) * 100.0, 4),
            "fills": sum(w["fills"] for w in wallets.values()),
        },
    }
    return out


def data_quality(checks: StartChecks, opposite: EngineRun | None) -> dict:
    return {
        "coarse_bars": {c.wallet: c.as_dict() for c in checks.coarse},
        "unit_vs_fee": {f.wallet: f.as_dict() for f in checks.fees},
        "opposite_intrabar": None if opposite is None else {"path": OPPOSITE_PATH, **headline(opposite)},
        "warnings": checks.warnings,
    }


__all__ = ["OPPOSITE_PATH", "data_quality", "headline"]
