"""Config -> data -> wallets -> engine -> result objects: the backtest's Python API.

>>> from hedgekit.config import load_config
>>> from hedgekit.engine.session import run_backtest
>>> result = run_backtest(load_config("examples/dual_wallet.yaml"))
>>> result.summary["total"]["return_pct"]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from loguru import logger

from hedgekit import registry
from hedgekit.config import (
    BacktestConfig,
    GridHedgeConfig,
    HedgeWalletConfig,
    LongWalletConfig,
)
from hedgekit.core.strategy import Strategy
from hedgekit.core.unit_spec import UnitMode
from hedgekit.core.volatility import DAY_MS
from hedgekit.engine import backtest as engine
from hedgekit.engine.checks import StartChecks, coarse_bars, start_unit, unit_vs_fee
from hedgekit.engine.results import build_result, data_quality
from hedgekit.feeds.coverage import FundingGap, funding_gaps
from hedgekit.feeds.datadir import DEFAULT_DOWNLOAD_DIR, missing_span, resolve_market_ref
from hedgekit.feeds.history import (
    BUNDLED_BTC_1M,
    Candles,
    bundled_path,
    load_candles,
    load_funding,
)
from hedgekit.registry import build_strategy
from hedgekit.report.results import BacktestResult
from hedgekit.venues.sim import SimConfig, SimExchange

Progress = Callable[[int, int], None]


def resolve_data_path(
    value: str | None, download_dir: str | Path | None = None, start=None, end=None
) -> Path:
    """A config/CLI data path; None or ``bundled:NAME`` means a file shipped in the package,
    ``exchange/symbol/timeframe`` a file of `hedgekit download` in ``download_dir`` (the error
    for a missing one names the command that fetches ``start``..``end``)."""
    if value is None:
        return bundled_path(BUNDLED_BTC_1M)
    if value.startswith("bundled:"):
        return bundled_path(value.removeprefix("bundled:"))
    downloaded = resolve_market_ref(value, download_dir or DEFAULT_DOWNLOAD_DIR, start, end)
    return downloaded if downloaded is not None else Path(value)


def wallet_allocation(w, first_price: float) -> float:
    """USD margin of a wallet; a grid hedge defaults to the spot value at the first price."""
    if isinstance(w, GridHedgeConfig) and w.allocation is None:
        return w.spot_coins() * first_price
    return float(w.allocation)


def sim_config(cfg: BacktestConfig, w, index: int, first_price: float) -> SimConfig:
    v = cfg.venue
    # Spot accounts have no margin: the venue takes leverage 1 (a wallet may still use < 1).
    leverage = 1.0 if cfg.instrument.contract == "spot" else w.leverage
    return SimConfig(
        initial_cash=wallet_allocation(w, first_price), leverage=leverage, margin_mode=v.margin_mode,
        maintenance_margin_rate=v.maintenance_margin_rate, slippage=v.slippage,
        limit_fill=v.limit_fill, trigger_order=v.trigger_order,
        seed=cfg.seed * 1000 + index, maker_fee=v.maker_fee, taker_fee=v.taker_fee,
    )


@dataclass(frozen=True, slots=True)
class LoadedData:
    candles: Candles
    funding: engine.Funding | None
    funding_source: str
    funding_gaps: tuple[FundingGap, ...] = ()  # spans of the candles the funding file misses
    funding_interval_ms: int = 0


def load_data(
    cfg: BacktestConfig, data: str | None = None, start=None, end=None
) -> LoadedData:
    value = data if data is not None else cfg.data.candles
    start, end = start or cfg.data.start, end or cfg.data.end
    root = cfg.data.download_dir or DEFAULT_DOWNLOAD_DIR
    path = resolve_data_path(value, root, start, end)
    candles = load_candles(path, start=start, end=end, on_spike=cfg.data.on_spike)
    if value is not None and (short := missing_span(value, root, start, end, candles)):
        logger.warning(short)
    if len(candles) == 0:
        raise ValueError(f"{path}: no bars between the requested start and end")
    fc = cfg.venue.funding
    funding = None
    source = "none"
    gaps: tuple[FundingGap, ...] = ()
    interval = int(fc.interval_hours * 3_600_000)
    first, last = int(candles.ts[0]), int(candles.ts[-1])
    if cfg.instrument.contract == "spot":
        source = "none (spot: no funding)"
        if fc.file is not None or fc.rate is not None:
            logger.warning("instrument.contract is spot: venue.funding is ignored (spot pays no funding)")
            source = "none (spot: no funding; venue.funding ignored)"
    elif fc.file is not None:
        fpath = resolve_data_path(fc.file, cfg.data.download_dir)
        fs = load_funding(fpath)
        keep = (fs.ts >= first) & (fs.ts <= last)
        funding = engine.Funding(fs.ts[keep], fs.rate[keep])
        source = str(fpath)
        interval = fs.interval_ms or interval
        gaps = tuple(funding_gaps(fs.ts, first, last, interval))
        if gaps:
            missing = sum(g.payments for g in gaps)
            shown = "; ".join(str(g) for g in gaps[:5]) + (f"; and {len(gaps) - 5} more" if len(gaps) > 5 else "")
            logger.warning(
                f"{fpath}: no funding rate for {missing} of the {_fmt_hours(interval)} payments due over "
                f"the candles ({len(gaps)} span(s)): {shown}; no funding is paid there (see summary.json "
                "data.funding_missing)"
            )
    elif fc.rate is not None:
        step = int(fc.interval_hours * 3_600_000)
        ts = np.arange((first // step + 1) * step, last + 1, step, dtype=np.int64)
        funding = engine.Funding(ts, np.full(len(ts), fc.rate))
        source = f"constant {fc.rate} every {fc.interval_hours:g}h"
    return LoadedData(candles, funding, source, gaps, interval)


def _fmt_hours(ms: int) -> str:
    return f"{ms / 3_600_000:g}h"


def funding_missing(loaded: LoadedData) -> dict:
    """What ``summary.json`` says about the funding file's coverage (never a silent zero)."""
    return {
        "payments": sum(g.payments for g in loaded.funding_gaps),
        "interval_hours": loaded.funding_interval_ms / 3_600_000,
        "spans": [g.as_dict() for g in loaded.funding_gaps[:50]],
    }


def run_backtest(
    cfg: BacktestConfig,
    *,
    data: str | None = None,
    start=None,
    end=None,
    mode: Literal["fast", "reference"] = "fast",
    progress: Progress | None = None,
    loaded: LoadedData | None = None,
    frames: bool = True,
) -> BacktestResult:
    """``frames=False``: no fills/orders frames in the result and no order log kept at all
    (a sweep keeps only the summary)."""
    loaded = loaded or load_data(cfg, data, start, end)
    c, warmup = _split_warmup(cfg, loaded.candles)
    bars = engine.Bars(c.ts, c.open, c.high, c.low, c.close)
    instrument = cfg.instrument_model()
    first_price = float(c.open[0])

    def factory(w, i):
        def make() -> tuple[Strategy, SimExchange]:
            strategy = build_strategy(w, instrument, cfg.venue.max_leverage)
            if strategy.wants_history and warmup is not None:
                strategy.seed_history(warmup.ts, warmup.close)
            line = strategy.describe(first_price)
            if line:
                logger.info(line)
            venue = SimExchange(instrument, sim_config(cfg, w, i, first_price))
            venue.keep_order_log = frames  # without frames nothing reads it
            return strategy, venue

        return make

    factories = [(w.name, factory(w, i)) for i, w in enumerate(cfg.wallets)]
    cb = None if progress is None else (lambda i: progress(i, len(bars)))
    history = None if warmup is None else engine.Bars(warmup.ts, warmup.open, warmup.high, warmup.low, warmup.close)
    checks = start_checks(cfg, bars, history, first_price)
    for msg in checks.warnings:
        logger.warning(msg)
    limits = drawdown_limits(cfg)
    run = engine.run(bars, factories, funding=loaded.funding, mode=mode, progress=cb, history=history,
                     max_drawdown=limits)
    _log_warnings(run)
    opposite = None
    if checks.any_coarse:
        # In memory only: the figures go into the summary beside the main run's.
        logger.warning("bars too coarse for the unit: running the backtest again with the opposite intrabar order")
        opposite = engine.run(bars, factories, funding=loaded.funding, mode=mode, history=history,
                              max_drawdown=limits, opposite_intrabar=True)
    with engine.gc_paused():  # the metrics read every record the run kept
        result = build_result(cfg, c, run, loaded.funding_source, warmup_bars=0 if warmup is None else len(warmup),
                              frames=frames)
    result.summary["data"]["funding_missing"] = funding_missing(loaded)
    result.summary["data_quality"] = data_quality(checks, opposite)
    return result


def start_checks(cfg: BacktestConfig, bars: engine.Bars, history: engine.Bars | None, first_price: float) -> StartChecks:
    """Each unit wallet's unit at the first price against the traded bars' median range and
    against the taker fee (``engine.checks``)."""
    instrument = cfg.instrument_model()
    coarse, fees = [], []
    for w in cfg.wallets:
        if not isinstance(w, LongWalletConfig | HedgeWalletConfig):
            continue
        spec = w.unit.spec()
        atr = None
        if spec.mode is UnitMode.ATR:  # the ATR the runner gives the strategy at start
            atr = engine._atr_source(bars, history, spec.atr_period).value_at(int(bars.ts[0]))
        unit = start_unit(spec, first_price, instrument, atr)
        coarse.append(coarse_bars(w.name, bars.high, bars.low, unit))
        fees.append(unit_vs_fee(w.name, unit, first_price, cfg.venue.taker_fee))
    return StartChecks(tuple(coarse), tuple(fees))


def drawdown_limits(cfg: BacktestConfig) -> dict[str, float]:
    """Wallet name -> ``risk.max_drawdown_pct`` of the unit wallets that set one."""
    return {w.name: w.risk.max_drawdown_pct for w in cfg.wallets
            if isinstance(w, LongWalletConfig | HedgeWalletConfig) and w.risk.max_drawdown_pct is not None}


def _log_warnings(run: engine.EngineRun, limit: int = 20) -> None:
    """Strategy and venue warnings (refused orders, hedge ratio out of band, liquidation),
    stamped with the data time they happened at; the rest are counted."""
    from hedgekit.report.results import iso_ms

    for w in run.wallets:
        warnings = w.runner.log.warnings
        for ts, msg in warnings[:limit]:
            logger.warning(f"{iso_ms([ts])[0]} {msg}")
        if len(warnings) > limit:
            logger.warning(f"{w.name}: {len(warnings) - limit} more warning(s), see summary.json")


def atr_warmup_bars(cfg: BacktestConfig) -> int:
    """Bars every wallet waits before trading so that ATR units have their ATR at anchor
    time: the longest ``unit.atr_period`` (0 without ATR units)."""
    return max((w.unit.period for w in cfg.wallets
                if isinstance(w, LongWalletConfig | HedgeWalletConfig) and w.unit.mode is UnitMode.ATR), default=0)


@dataclass(frozen=True, slots=True)
class Warmup:
    """Where trading starts: the one rule the backtest (``_split_warmup``) and the live engine
    (``engine.live``) share, so that a PAPER replay trades from the backtest's bar.

    Every wallet waits the longest warm-up: ``bars`` completed bars (ATR units: the longest
    ``unit.atr_period``) and ``days`` days of data (a grid hedge without ``grid.volatility``
    estimates σ from them: the longest ``grid.volatility_lookback_days``). The first traded
    input is the first one with at least ``bars`` bars before it and a time at or after
    ``first_ts + days``, ``first_ts`` being the time of the first input (the first bar)."""

    bars: int = 0
    days: int = 0

    def __bool__(self) -> bool:
        return bool(self.bars or self.days)

    def start_ts(self, first_ts: int) -> int:
        """The earliest time of a traded input when the data begins at ``first_ts``."""
        return int(first_ts) + self.days * DAY_MS

    def over(self, bars_before: int, ts: int, first_ts: int) -> bool:
        """True when the input at ``ts``, with ``bars_before`` completed bars before it, is
        traded (the live engine asks this of every input until it is)."""
        return bars_before >= self.bars and (not self.days or ts >= self.start_ts(first_ts))

    def cut(self, ts: np.ndarray) -> int:
        """Index of the first traded bar of the bars ``ts`` (sorted): the first ``i`` with
        ``over(i, ts[i], ts[0])``; ``len(ts)`` or more when no bar is traded."""
        cut = self.bars
        if self.days and len(ts):
            cut = max(cut, int(np.searchsorted(ts, self.start_ts(int(ts[0])), side="left")))
        return cut


def warmup_of(cfg: BacktestConfig, *, venue_history: bool = False) -> Warmup:
    """The config's warm-up (``Warmup()``, falsy, when no wallet needs one). ``venue_history``
    (REAL): a grid's σ comes from the venue's daily candles at its start, no warm-up days."""
    days = [0 if venue_history else registry.for_wallet(w).warmup_days(w) for w in cfg.wallets]
    return Warmup(bars=atr_warmup_bars(cfg), days=max(days, default=0))


def _split_warmup(cfg: BacktestConfig, candles: Candles) -> tuple[Candles, Candles | None]:
    """Warm-up bars are not traded (no look-ahead): a grid hedge without a configured σ
    estimates it from the first lookback days of the data, ATR units take their ATR from the
    first ``atr_period`` bars. Every wallet starts after the longest warm-up (``Warmup``)."""
    warmup = warmup_of(cfg)
    if not warmup:
        return candles, None
    cut = warmup.cut(candles.ts)
    if cut >= len(candles) - 1:
        if warmup.bars and cut == warmup.bars:
            raise ValueError(
                f"{candles.path}: ATR units need unit.atr_period={warmup.bars} bars of warm-up before the "
                f"first trade and the data has only {len(candles)}: use more data or a shorter atr_period"
            )
        span = (int(candles.ts[-1]) - int(candles.ts[0])) / DAY_MS
        raise ValueError(
            f"{candles.path}: grid.volatility is not set and the data ({span:.1f} days) is not longer "
            f"than grid.volatility_lookback_days={warmup.days}: set grid.volatility or a shorter lookback"
        )
    return candles.slice(int(candles.ts[cut]), None), candles.slice(None, int(candles.ts[cut]))


__all__ = [
    "BacktestResult", "LoadedData", "Warmup", "atr_warmup_bars", "drawdown_limits", "load_data", "resolve_data_path",
    "run_backtest", "warmup_of",
]
