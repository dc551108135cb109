"""Hand-made backtest output folders (fills.csv, orders.csv, equity.csv, summary.json) and a
reader for the figures embedded in report.html. Deterministic for a given seed."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

T0_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
STEP_MS = 60_000

WALLET_KINDS = {
    "long_wallet": (["stop_loss", "stop_entry_buy"], ["RETRACEMENT", "DECLINE", "RECOVER", "ADVANCE"]),
    "hedge_wallet": (["stop_loss_full", "stop_entry_short", "stop_loss_cover", "market_buy_full"],
                     ["RETRACEMENT", "DECLINE", "RECOVERY", "RESET", "ADVANCE"]),
    "grid_hedge": (["grid_sell", "grid_buy", "hedge_take_profit"], ["ACTIVE", "ACTIVE", "STOPPED"]),
}
BUY_KINDS = {"market_buy", "market_buy_full", "stop_entry_buy", "stop_loss_cover", "grid_buy",
             "hedge_take_profit"}


def iso(ms) -> np.ndarray:
    arr = np.asarray(ms, dtype=np.int64).astype("datetime64[ms]")
    return np.char.add(np.datetime_as_string(arr, unit="ms"), "Z")


def write_output(folder: Path, *, bars: int = 2000, wallets: tuple[str, ...] = ("long", "hedge"),
                 grid: bool = False, fills_per_wallet: int = 40, cycles: int = 3, seed: int = 7,
                 grid_fills: int | None = None) -> Path:
    """Write a plausible output folder. Wallet strategies: 'long' -> long_wallet, 'hedge' ->
    hedge_wallet, 'grid' (added when ``grid``) -> grid_hedge with the hedge columns
    (``grid_fills`` fills, default ``fills_per_wallet``)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ts = T0_MS + np.arange(bars, dtype=np.int64) * STEP_MS
    price = np.round(100_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0008, bars))), 1)
    names = list(wallets) + (["grid"] if grid else [])
    strategy = {"long": "long_wallet", "hedge": "hedge_wallet", "grid": "grid_hedge"}
    leverage = {"long": 2.0, "hedge": 2.0, "grid": 1.0}

    fill_frames, order_rows, eq_frames, s_wallets = [], [], [], {}
    for name in names:
        strat = strategy.get(name, "long_wallet")
        kinds, phases = WALLET_KINDS[strat]
        per = grid_fills if (strat == "grid_hedge" and grid_fills is not None) else fills_per_wallet
        n = min(per, bars - 1)
        idx = np.sort(rng.choice(np.arange(1, bars), size=n, replace=False))
        idx = np.concatenate([[0], idx])
        kind = ["market_buy"] + [kinds[i % len(kinds)] for i in range(n)]
        side = np.array(["buy" if k in BUY_KINDS else "sell" for k in kind])
        qty = np.full(n + 1, 0.05)
        qty[0] = 0.2
        signed = np.where(side == "buy", qty, -qty)
        position = np.round(np.cumsum(signed), 6)
        realized = np.round(np.cumsum(np.concatenate([[0.0], rng.normal(5.0, 40.0, n)])), 8)
        unit = ["" if k.startswith("market") else str(int(u)) for k, u in zip(kind, rng.integers(-4, 5, n + 1), strict=True)]
        fill_frames.append(pd.DataFrame({
            "ts": ts[idx], "wallet": name, "order_id": [f"hk-{name}-{i}" for i in range(n + 1)],
            "kind": kind, "side": side, "qty": qty, "price": price[idx],
            "fee": np.round(qty * price[idx] * 0.0005, 8), "unit": unit,
            "phase": ["ADVANCE"] + [phases[i % len(phases)] for i in range(n)],
            "position": position, "realized_pnl": realized,
        }))
        # Orders: a fresh grid of levels -4..4 at each cycle start (anchor = that bar's close).
        for c in range(cycles):
            b = c * bars // cycles
            p0 = float(price[b])
            u_size = round(p0 * 0.01, 1)
            for u in (-4, -3, -2, -1, 1, 2, 3, 4):
                order_rows.append((int(ts[b]), name, f"hk-{name}-c{c}-u{u}", "placed", "stop_loss",
                                   "sell", 0.05, round(p0 + u * u_size, 1), str(u)))
                order_rows.append((int(ts[min(b + 1, bars - 1)]), name, f"hk-{name}-c{c}-u{u}", "cancelled",
                                   "stop_loss", "sell", 0.05, round(p0 + u * u_size, 1), str(u)))
        order_rows.append((int(ts[0]), name, f"hk-{name}-mb", "placed", "market_buy", "buy", 0.2, np.nan, ""))
        # Equity: a noisy curve from the allocation; position after the latest fill.
        alloc = 10_000.0
        equity = alloc * np.exp(np.cumsum(rng.normal(0.0, 0.0005, bars)))
        pos_at_bar = position[np.searchsorted(idx, np.arange(bars), side="right") - 1]
        frame = pd.DataFrame({"ts": ts, "wallet": name, "equity": np.round(equity, 8),
                              "position": pos_at_bar, "price": price})
        if strat == "grid_hedge":
            spot = 1.0 * price
            frame["spot_equity"] = spot
            frame["hedged_equity"] = spot + (equity - alloc)
            frame["unhedged_equity"] = spot
            frame["hedge_ratio"] = np.clip(np.abs(pos_at_bar), 0, 1)
        eq_frames.append(frame)
        w = {
            "strategy": strat, "start_equity": alloc, "end_equity": round(float(equity[-1]), 2),
            "return_pct": round((equity[-1] / alloc - 1) * 100, 4), "max_drawdown_pct": 0.0,
            "realized_pnl": float(realized[-1]), "fees": 0.0, "funding": round(float(rng.normal(0, 5)), 2),
            "fills": n + 1, "resets": 0, "final_phase": phases[(n - 1) % len(phases)],
            "buy_and_hold_return_pct": 0.0, "warnings": [],
        }
        if strat == "grid_hedge":
            w["hedge"] = {"spot_qty": 1.0, "avg_hedge_ratio": 0.41, "futures_pnl": -12.5}
        s_wallets[name] = w

    fills = pd.concat(fill_frames, ignore_index=True).sort_values("ts", kind="stable")
    fills.insert(0, "timestamp", iso(fills.pop("ts")))
    fills.to_csv(folder / "fills.csv", index=False, lineterminator="\n")
    orders = pd.DataFrame(order_rows, columns=["ts", "wallet", "order_id", "event", "kind", "side",
                                               "qty", "trigger_price", "unit"]).sort_values("ts", kind="stable")
    orders.insert(0, "timestamp", iso(orders.pop("ts")))
    orders.to_csv(folder / "orders.csv", index=False, lineterminator="\n")
    eq = pd.concat(eq_frames, ignore_index=True)
    eq = eq.iloc[np.argsort(np.tile(np.arange(bars), len(names)), kind="stable")]
    eq.insert(0, "timestamp", iso(eq.pop("ts")))
    eq.to_csv(folder / "equity.csv", index=False, lineterminator="\n")
    summary = {
        "data": {"file": "/data/BTCUSDT-1m.feather", "sha256": "ab" * 32, "bars": bars,
                 "start": str(iso([ts[0]])[0]), "end": str(iso([ts[-1]])[0]),
                 "first_price": float(price[0]), "last_price": float(price[-1]), "funding": "none"},
        "wallets": s_wallets,
        "total": {},
        "engine": {"bars": bars, "stepped_bars": 10, "strategy_events": 20},
        "config": {
            "wallets": [{"name": n, "allocation": 10_000.0, "leverage": leverage.get(n, 1.0),
                         "unit": {"mode": "percent", "value": 0.01}, "strategy": strategy.get(n, "long_wallet")}
                        for n in names],
            "instrument": {"symbol": "BTCUSDT", "tick_size": 0.1, "lot_size": 0.001,
                           "min_notional": 5.0, "contract": "perp"},
            "seed": seed,
        },
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return folder


# --------------------------------------------------------------------------- reading the page

_BLOCK = re.compile(r'<script type="application/json" id="([\w-]+)-data" data-chart="[\w-]+">(.*?)</script>', re.S)


def figures(html_text: str) -> dict[str, dict]:
    """chart id -> figure dict (data arrays decoded) as embedded in report.html."""
    return {cid: _decode(json.loads(body)) for cid, body in _BLOCK.findall(html_text)}


def _decode(obj):
    if isinstance(obj, dict):
        if "bdata" in obj and "dtype" in obj:
            arr = np.frombuffer(base64.b64decode(obj["bdata"]), dtype=np.dtype(obj["dtype"]))
            shape = obj.get("shape")
            if shape:
                dims = [int(s) for s in str(shape).split(",")] if not isinstance(shape, list) else shape
                arr = arr.reshape(dims)
            return arr
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def fill_points(fig: dict) -> dict[str, list[tuple[float, float]]]:
    """kind -> [(x ms, price)] of the fill-marker traces of the price chart."""
    out: dict[str, list[tuple[float, float]]] = {}
    for tr in fig["data"]:
        meta = tr.get("meta") or {}
        if meta.get("role") == "fills":
            xs = np.asarray(tr["x"], dtype=float)
            ys = np.asarray(tr["y"], dtype=float)
            out.setdefault(meta["kind"], []).extend(zip(xs.tolist(), ys.tolist(), strict=True))
    return out
