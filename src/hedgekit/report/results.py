"""Backtest results as objects (frames + summary) and the output folder they are written to.

Values are kept at full precision in memory; rounding to the instrument's tick/lot (prices,
sizes) and to cents/8 decimals (money) happens only when written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hedgekit.config import BacktestConfig
from hedgekit.engine.backtest import EngineRun, phase_durations
from hedgekit.feeds.history import Candles
from hedgekit.report.cycles import MONEY_COLUMNS, run_cycles
from hedgekit.report.metrics import buy_and_hold_curve, max_drawdown

FILL_COLUMNS = [
    "timestamp", "wallet", "order_id", "kind", "side", "qty", "price", "fee", "unit",
    "phase", "position", "realized_pnl",
]
ORDER_COLUMNS = ["timestamp", "wallet", "order_id", "event", "kind", "side", "qty", "trigger_price", "unit"]
EQUITY_COLUMNS = ["timestamp", "wallet", "equity", "position", "price"]
FUNDING_COLUMNS = ["timestamp", "wallet", "rate", "mark_price", "amount"]
MONEY_DECIMALS = 8


def iso_ms(ts: np.ndarray | list[int]) -> np.ndarray:
    """ms epoch -> ISO-8601 UTC strings with milliseconds ('2025-05-04T00:01:00.000Z')."""
    arr = np.asarray(ts, dtype="datetime64[ms]")
    return np.char.add(np.datetime_as_string(arr, unit="ms"), "Z")


@dataclass
class BacktestResult:
    config: BacktestConfig
    fills: pd.DataFrame
    orders: pd.DataFrame
    summary: dict
    engine: EngineRun

    @cached_property
    def equity(self) -> pd.DataFrame:
        """Every bar, all wallets interleaved bar by bar (built on first use: it is large)."""
        return equity_frame(self.engine)

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
        eq = self.equity
        if every > 1:
            n_wallets = max(eq["wallet"].nunique(), 1)
            bar = np.arange(len(eq)) // n_wallets
            eq = eq[(bar % every == 0) | (bar == bar.max())]
        _csv(eq, out / "equity.csv", {"equity": MONEY_DECIMALS, "position": qd, "price": pd_})
        _csv(self.cycles, out / "cycles.csv", {"start_price": pd_, "end_price": pd_,
                                              **dict.fromkeys(MONEY_COLUMNS, MONEY_DECIMALS)})
        (out / "summary.json").write_text(json.dumps(self.summary, indent=2, default=str) + "\n")
        return out


def _csv(df: pd.DataFrame, path: Path, decimals: dict[str, int]) -> None:
    df = df.copy()
    for col, d in decimals.items():
        if col in df and len(df):
            df[col] = df[col].astype(float).round(d)
            # -0.0 is the same number as 0.0; print it once, one way.
            df.loc[df[col] == 0, col] = 0.0
    df.to_csv(path, index=False, lineterminator="\n")


def _unit_str(unit: int | None) -> str:
    return "" if unit is None else str(unit)


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
        oc["unit"] += [_unit_str(o.unit) for o in log]
    orders = _frame(oc, ORDER_COLUMNS)
    # Stable sort by time keeps each wallet's own order within a timestamp.
    orders = orders.sort_values("timestamp", kind="stable").reset_index(drop=True)
    orders["timestamp"] = iso_ms(orders["timestamp"].to_numpy(dtype=np.int64))

    summary = summarize(cfg, candles, run, funding_source)
    summary["data"]["warmup_bars"] = warmup_bars
    return BacktestResult(cfg, fills, orders, summary, run)


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
        fc["unit"] += [_unit_str(f.unit) for f in fills]
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


def export_run(journal, run_id: int, cfg: BacktestConfig, out: str | Path) -> Path:
    """fills.csv and orders.csv of a journaled (PAPER/RECOMMENDATION) run, in the backtest's
    format, so the two can be compared file to file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fills_rows, order_rows = [], []
    for w in cfg.wallets:
        for f in journal.fills(run_id, w.name):
            fills_rows.append((f.ts, w.name, f.client_id, f.kind, f.side, f.qty, f.price, f.fee,
                               _unit_str(f.unit), f.phase or "", f.position, f.realized_pnl))
        for e in journal.order_events(run_id, w.name):
            order_rows.append((e.ts, w.name, e.client_id, e.event, e.kind, e.side, e.qty,
                               e.trigger, _unit_str(e.unit)))
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
