"""Checks of the loaded arrays before they are handed out: finite and positive values,
consistent bars, time order and duplicates (the first offender in file order is raised, naming
its row), newest-first files, gaps (logged) and bad prints (``data.on_spike``).
"""

from __future__ import annotations

from typing import SupportsFloat

import numpy as np
from loguru import logger

from hedgekit.core.errors import ParameterError
from hedgekit.feeds.errors import DataError
from hedgekit.feeds.formats import _Source
from hedgekit.feeds.series import _OHLCV_KEYS, Candles, SpikeFix, TimeLike, _bounds, _fmt_tf, _iso
from hedgekit.feeds.spikes import SpikePolicy, clip_spikes, find_spikes

# -- validation -------------------------------------------------------------------------------

# (array index, rank, column, problem, hint); the earliest row wins, then the lowest rank.
_Finding = tuple[int, int, str, str, str]


def _num(value: SupportsFloat) -> str:
    return repr(float(value))


def _first(mask: np.ndarray) -> int | None:
    if not mask.size:
        return None
    i = int(np.argmax(mask))
    return i if mask[i] else None


def _report(src: _Source, findings: list[_Finding]) -> None:
    if not findings:
        return
    i, _, column, problem, hint = min(findings, key=lambda f: (src.locate(f[0])[0], f[1]))
    raise src.error(i, column, problem, hint)


def _check_finite(arrays: dict[str, np.ndarray]) -> list[_Finding]:
    out: list[_Finding] = []
    for name, values in arrays.items():
        i = _first(~np.isfinite(values))
        if i is not None:
            what = "empty or NaN value" if np.isnan(values[i]) else f"{values[i]} is not finite"
            out.append(
                (i, 0, name, what, "fill it in or delete the row; hedgekit never guesses data")
            )
    return out


def _check_positive(arrays: dict[str, np.ndarray], what: str) -> list[_Finding]:
    out: list[_Finding] = []
    for name, values in arrays.items():
        i = _first(values <= 0)
        if i is not None:
            hint = f"{what} must be > 0; fix or delete the row"
            out.append((i, 1, name, f"{name}={_num(values[i])} is not positive", hint))
    return out


def _check_order(src: _Source, ts: np.ndarray, column: str, *, allow_equal: bool) -> list[_Finding]:
    if len(ts) < 2:
        return []
    steps = np.diff(ts)
    out: list[_Finding] = []
    i = _first(steps < 0)
    if i is not None:
        _, prev = src.locate(i)
        order = f"newest first, as {src.fmt} files are" if src.reversed else "oldest first"
        out.append((
            i + 1, 3, column,
            f"rows out of time order (expected {order}): {_iso(int(ts[i + 1]))} here, "
            f"{_iso(int(ts[i]))} at {prev}",
            "sort the file by time and check it for shifted or duplicated rows "
            "(hedgekit never reorders a file silently)",
        ))  # fmt: skip
    if not allow_equal:
        i = _first(steps == 0)
        if i is not None:
            _, prev = src.locate(i)
            out.append((
                i + 1, 3, column, f"duplicate timestamp {_iso(int(ts[i]))}, also at {prev}",
                "keep one row per timestamp and delete the duplicates",
            ))  # fmt: skip
    return out


def _check_candles(
    src: _Source, cols: dict[str, str], ts: np.ndarray, v: dict[str, np.ndarray]
) -> None:
    o, h, lo, c, vol = v["open"], v["high"], v["low"], v["close"], v["volume"]
    named = {cols[k]: v[k] for k in _OHLCV_KEYS[1:]}
    findings = _check_finite(named)
    findings += _check_positive({cols[k]: v[k] for k in _OHLCV_KEYS[1:5]}, "prices")
    fix = "the bar is inconsistent; fix or delete the row"
    with np.errstate(invalid="ignore"):
        checks = (
            (1, "volume", vol < 0, lambda i: f"volume={_num(vol[i])} is negative"),
            (2, "high", h < lo, lambda i: f"high={_num(h[i])} is below low={_num(lo[i])}"),
            (2, "high", h < np.maximum(o, c),
             lambda i: f"high={_num(h[i])} is below max(open, close)={_num(max(o[i], c[i]))}"),
            (2, "low", lo > np.minimum(o, c),
             lambda i: f"low={_num(lo[i])} is above min(open, close)={_num(min(o[i], c[i]))}"),
        )  # fmt: skip
        for rank, key, mask, describe in checks:
            i = _first(mask)
            if i is not None:
                findings.append((i, rank, cols[key], describe(i), fix))
    findings += _check_order(src, ts, cols["timestamp"], allow_equal=False)
    _report(src, findings)


def _reverse_if_newest_first(src: _Source, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    ts = arrays["timestamp"]
    if not src.newest_first or len(ts) < 2 or ts[0] <= ts[-1]:
        return arrays
    src.reversed = True
    logger.debug("{}: {} is stored newest first; reversed to time order", src.path, src.fmt)
    return {k: a[::-1] for k, a in arrays.items()}


def _log_gaps(candles: Candles) -> None:
    if not candles.gaps:
        return
    after, count = candles.gaps[0]
    logger.warning(
        "{}: {} gap(s), {} missing {} bar(s) in total; first after {} ({} bar(s))",
        candles.path, len(candles.gaps), candles.missing_bars, _fmt_tf(candles.timeframe_ms),
        _iso(after), count,
    )  # fmt: skip
    steps = np.diff(candles.ts)
    off_grid = int(np.count_nonzero(steps % candles.timeframe_ms)) if candles.timeframe_ms else 0
    if off_grid:
        logger.warning(
            "{}: {} step(s) are not a multiple of {}; some bars are off the time grid",
            candles.path, off_grid, _fmt_tf(candles.timeframe_ms),
        )  # fmt: skip


def _empty_slice(src: _Source, ts: np.ndarray, start: TimeLike, end: TimeLike) -> DataError:
    lo, hi = _bounds(start, end)
    window = f"[{'...' if lo is None else _iso(lo)}, {'...' if hi is None else _iso(hi)})"
    return src.fail(
        f"no rows in the time range {window}",
        hint=f"the file covers {_iso(int(ts[0]))} -> {_iso(int(ts[-1]))}",
    )


def _ohlc(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, j: int) -> tuple[float, float, float, float]:
    return float(o[j]), float(h[j]), float(lo[j]), float(c[j])


def _handle_spikes(
    src: _Source, cols: dict[str, str], arrays: dict[str, np.ndarray], policy: SpikePolicy, keep: slice
) -> tuple[dict[str, np.ndarray], tuple[SpikeFix, ...]]:
    """Find the bad prints among the bars in ``keep`` (judged against the whole file, so a
    bar at the edge of the window still has both neighbours) and apply ``policy``."""
    if policy not in ("error", "drop", "clip"):
        raise ParameterError("on_spike", policy, "must be error, drop or clip")
    o, h, lo, c = (arrays[k] for k in ("open", "high", "low", "close"))
    spikes = find_spikes(h, lo, c)
    inside = (spikes.index >= keep.start) & (spikes.index < keep.stop)
    if not inside.any():
        return arrays, ()
    first = int(np.argmax(inside))
    i = int(spikes.index[first])
    if policy == "error":
        side, value, bound = (("low", lo[i], f"below {spikes.floor[first]:.6g}") if spikes.low_bad[first]
                              else ("high", h[i], f"above {spikes.ceiling[first]:.6g}"))
        count = int(np.count_nonzero(inside))
        raise src.error(
            i, cols[side],
            f"bad print: {side}={_num(value)} is far outside the market around it (bar "
            f"{_iso(int(arrays['timestamp'][i]))} open={_num(o[i])} high={_num(h[i])} low={_num(lo[i])} "
            f"close={_num(c[i])}; neighbouring closes {_num(c[max(i - 1, 0)])} and "
            f"{_num(c[min(i + 1, len(c) - 1)])}; a {side} {bound} is a spike)"
            + (f"; {count} such bar(s) in the file" if count > 1 else ""),
            "set data.on_spike: drop (remove the bar, reported as a gap) or clip (clamp it to its "
            "neighbours), or fix the file",
        )
    idx = spikes.index[inside]
    ts = arrays["timestamp"]
    if policy == "drop":
        fixes = tuple(
            SpikeFix(*src.locate(int(j)), int(ts[j]), "dropped", _ohlc(o, h, lo, c, j), None) for j in idx
        )
        keep_mask = np.ones(len(ts), dtype=bool)
        keep_mask[idx] = False
        arrays = {k: a[keep_mask] for k, a in arrays.items()}
    else:
        sub = type(spikes)(idx, spikes.floor[inside], spikes.ceiling[inside],
                           spikes.low_bad[inside], spikes.high_bad[inside])
        no, nh, nl, nc = clip_spikes(sub, o, h, lo, c)
        fixes = tuple(
            SpikeFix(*src.locate(int(j)), int(ts[j]), "clipped", _ohlc(o, h, lo, c, j),
                     _ohlc(no, nh, nl, nc, j)) for j in idx
        )
        arrays = {**arrays, "open": no, "high": nh, "low": nl, "close": nc}
    f = fixes[0]
    logger.warning(
        "{}: {} bad print(s) {} (data.on_spike: {}); first at {} ({}), open/high/low/close {}",
        src.path, len(fixes), fixes[0].action, policy, f.where, _iso(f.ts),
        "/".join(_num(v) for v in f.ohlc),
    )  # fmt: skip
    return arrays, fixes
