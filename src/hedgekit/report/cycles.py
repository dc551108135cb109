"""Where the money went: each wallet's realized PnL split by RESET cycle into long legs, short
legs and the re-entry gap, with the fees and funding of the cycle (``cycles.csv``).

A pure function of the fills (the rows of fills.csv) and the funding payments; nothing here
reads files or the clock. The one computation behind ``cycles.csv`` and the report's "Where
the money went" section.

**Cycles.** A unit wallet's cycle runs from its start (or from the RESET that ended the
previous cycle) to the next RESET. The RESET fill — the long wallet's last buy, which makes
the long full again, or the hedge wallet's ``market_buy_full`` re-entry — is the *last* fill
of the cycle it ends: it is recognised as the fill after which the phase is ADVANCE again,
coming from a phase other than ADVANCE or STARTING (the rule of ``metrics.count_resets``, so
there are ``resets + 1`` rows). Cycle numbers start at 0 and match the cycle field of the
strategy's client order ids (``hk-<wallet>-<cycle>-…``), which is incremented by that RESET.
The last cycle is still open at the end of the run (``ended_by = end``; a stopped or
liquidated wallet's last cycle too). A grid hedge has no RESET: it gets one row for the whole
run, with no re-entry gap.

**Realized PnL** of a fill is the increase of the venue's cumulative realized PnL (average
entry price accounting, before fees) at that fill; it is non-zero only for a fill that reduces
the position. Every such fill is booked by the side it closed, whatever its kind (a stop, a
cover, a ``protective_close``, a ``flatten`` or a ``liquidation``):

- a fill that reduces a **short** → ``short_legs``;
- a fill that reduces a **long** → ``long_legs``.

**Re-entry gap.** Coins sold out of the long (any long-reducing sell) and not yet bought back
form the cycle's *exit pool*, at their quantity-weighted average exit price ``E``. A buy that
opens or adds to the long first *re-buys* from that pool: ``m = min(buy qty, pool qty)`` coins
are re-bought at the buy price ``B`` (the rest of the buy is new coins); the pool shrinks by
``m`` and is emptied after the cycle's RESET fill (coins sold and never re-bought in a cycle
stay sold). The buy books, in its own cycle,

    reentry_gap = m × (E − B)          long_legs += m × (B − E)

(negative gap: the wallet bought back higher than it had sold), which sum to zero: the buy
realizes nothing. So ``long_legs`` is the PnL of the long as if it had been held through every
exit and re-entry (the realized PnL of long-reducing fills plus the move ``E → B`` of each
re-bought coin), ``reentry_gap`` what stepping out and back in cost or gained against that,
and for every fill, row and wallet

    long_legs + short_legs + reentry_gap = realized_pnl

exactly. For the hedge wallet: a cycle that exits a long of ``Q0`` coins at ``E``, shorts,
covers and re-enters with ``Q`` coins at ``B`` shows the gap ``min(Q, Q0) × (E − B)`` in its own
row; the long wallet's gap is what each cycle's buys paid above (or below) its sells.

**Fees** are the fills' fees (positive = paid); **funding** the payments credited to the wallet
(negative = paid), each in the cycle during which it was paid (a payment at the very time of a
RESET fill belongs to the cycle that fill ends: the engine pays funding before it walks that
bar). ``net_pnl = realized_pnl − fees + funding``. Signs are those of summary.json, so each
wallet's column sums equal its ``realized_pnl``, ``fees`` and ``funding`` there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hedgekit.report.metrics import to_epoch_ms

__all__ = [
    "CYCLE_COLUMNS",
    "MONEY_COLUMNS",
    "UNIT_WALLETS",
    "cycle_table",
    "cycle_totals",
    "run_cycles",
]

CYCLE_COLUMNS = [
    "wallet", "strategy", "cycle", "start_time", "end_time", "start_price", "end_price", "ended_by",
    "phases", "fills", "long_legs", "short_legs", "reentry_gap", "realized_pnl", "fees", "funding",
    "net_pnl",
]
MONEY_COLUMNS = ("long_legs", "short_legs", "reentry_gap", "realized_pnl", "fees", "funding", "net_pnl")
UNIT_WALLETS = frozenset({"long_wallet", "hedge_wallet"})
_FLAT = 1e-9  # |position| below this is flat (venue positions are whole lots)
_NOT_A_RESET = frozenset({"ADVANCE", "STARTING", "", "nan"})


@dataclass(slots=True)
class _Cycle:
    start_ms: int
    start_price: float
    phases: list[str] = field(default_factory=list)
    fills: int = 0
    long_legs: float = 0.0
    short_legs: float = 0.0
    gap: float = 0.0
    fees: float = 0.0
    end_ms: int | None = None
    end_price: float | None = None

    def visit(self, phase: str) -> None:
        if phase and phase != "nan" and (not self.phases or self.phases[-1] != phase):
            self.phases.append(phase)


@dataclass(slots=True)
class _ExitPool:
    """Coins sold out of the long in this cycle and not yet re-bought, with their exit value."""

    qty: float = 0.0
    value: float = 0.0

    def sold(self, qty: float, price: float) -> None:
        self.qty += qty
        self.value += qty * price

    def rebuy(self, qty: float, price: float) -> float:
        """``qty`` coins bought onto the long at ``price``: returns their re-entry gap."""
        m = min(qty, self.qty)
        if m <= 0:
            return 0.0
        exit_avg = self.value / self.qty
        self.qty -= m
        self.value -= m * exit_avg
        if self.qty <= _FLAT:
            self.qty = self.value = 0.0
        return m * (exit_avg - price)

    def clear(self) -> None:
        self.qty = self.value = 0.0


def _is_reset(prev_phase: str, phase: str) -> bool:
    return phase == "ADVANCE" and prev_phase not in _NOT_A_RESET


def cycle_table(
    fills: pd.DataFrame,
    funding: pd.DataFrame | None = None,
    *,
    strategies: dict[str, str] | None = None,
    end_ms: int | None = None,
    end_price: float | None = None,
) -> pd.DataFrame:
    """One row per wallet and RESET cycle (see the module doc), columns ``CYCLE_COLUMNS``.

    ``fills``: the rows of fills.csv (timestamp or ts, wallet, side, qty, price, fee, phase,
    position after, cumulative realized_pnl), each wallet's in its own order. ``funding``:
    payments (timestamp or ts, wallet, amount credited); None when unknown, which leaves the
    funding column empty (NaN). ``strategies``: wallet -> strategy name (a wallet not named is
    taken for a unit wallet). ``end_ms`` / ``end_price``: end of the run and the last price,
    for the open last cycle (default: its last fill). Money is kept at full precision.
    """
    strategies = strategies or {}
    df = fills.copy() if fills is not None else pd.DataFrame()
    if len(df) == 0:
        return pd.DataFrame(columns=CYCLE_COLUMNS)
    if "ts" not in df:
        df["ts"] = to_epoch_ms(df["timestamp"])
    df = df.sort_values("ts", kind="stable")
    fund = None
    if funding is not None:
        fund = funding.copy()
        if "ts" not in fund:
            fund["ts"] = to_epoch_ms(fund["timestamp"]) if len(fund) else np.empty(0, dtype=np.int64)
    rows: list[dict] = []
    for wallet, g in df.groupby(df["wallet"].astype(str), sort=False):
        strategy = strategies.get(wallet, "")
        cycles = _wallet_cycles(g, unit_wallet=strategy in UNIT_WALLETS or strategy == "")
        paid = None
        if fund is not None:
            f = fund[fund["wallet"].astype(str) == wallet]
            paid = _funding_by_cycle(cycles, f["ts"].to_numpy(dtype=np.int64), f["amount"].to_numpy(dtype=float))
        last = cycles[-1]
        if last.end_ms is None:
            last.end_ms = max(int(end_ms), int(g["ts"].iloc[-1])) if end_ms is not None else int(g["ts"].iloc[-1])
            last.end_price = float(end_price) if end_price is not None else float(g["price"].iloc[-1])
        for k, c in enumerate(cycles):
            realized = c.long_legs + c.short_legs + c.gap
            fund_k = float(paid[k]) if paid is not None else float("nan")
            rows.append({
                "wallet": wallet, "strategy": strategy, "cycle": k,
                "start_time": c.start_ms, "end_time": c.end_ms,
                "start_price": c.start_price, "end_price": c.end_price,
                "ended_by": "RESET" if k < len(cycles) - 1 else "end",
                "phases": " ".join(c.phases), "fills": c.fills,
                "long_legs": c.long_legs, "short_legs": c.short_legs, "reentry_gap": c.gap,
                "realized_pnl": realized, "fees": c.fees, "funding": fund_k,
                "net_pnl": realized - c.fees + (fund_k if paid is not None else 0.0),
            })
    out = pd.DataFrame(rows, columns=CYCLE_COLUMNS)
    out["start_time"] = _iso(out["start_time"])
    out["end_time"] = _iso(out["end_time"])
    return out


def _iso(ms: pd.Series) -> np.ndarray:
    arr = ms.to_numpy(dtype=np.int64).astype("datetime64[ms]")
    return np.char.add(np.datetime_as_string(arr, unit="ms"), "Z")


def _wallet_cycles(g: pd.DataFrame, *, unit_wallet: bool) -> list[_Cycle]:
    ts = g["ts"].to_numpy(dtype=np.int64)
    side = g["side"].astype(str).str.lower().to_numpy()
    qty = g["qty"].to_numpy(dtype=float)
    price = g["price"].to_numpy(dtype=float)
    fee = g["fee"].to_numpy(dtype=float)
    pos_after = g["position"].to_numpy(dtype=float)
    realized = g["realized_pnl"].to_numpy(dtype=float)
    phase = g["phase"].fillna("").astype(str).to_numpy()

    cycles = [_Cycle(int(ts[0]), float(price[0]))]
    pool = _ExitPool()
    before, prev_real, prev_phase = 0.0, 0.0, ""
    for i in range(len(g)):
        c = cycles[-1]
        after = float(pos_after[i])
        inc = float(realized[i]) - prev_real
        prev_real = float(realized[i])
        c.fills += 1
        c.fees += float(fee[i])
        # The realized PnL goes to the side the fill reduced (nothing is realized from flat).
        if before > _FLAT or (before >= -_FLAT and side[i] == "buy"):
            c.long_legs += inc
        else:
            c.short_legs += inc
        if unit_wallet:
            if before > _FLAT and side[i] == "sell":
                pool.sold(min(float(qty[i]), before), float(price[i]))
            elif side[i] == "buy" and after > _FLAT:
                bought = float(qty[i]) if before >= -_FLAT else after  # a flip: the excess opened it
                gap = pool.rebuy(bought, float(price[i]))
                c.gap += gap
                c.long_legs -= gap
        before = after
        if unit_wallet and _is_reset(prev_phase, phase[i]):
            c.visit("RESET")
            c.end_ms, c.end_price = int(ts[i]), float(price[i])
            pool.clear()
            nxt = _Cycle(int(ts[i]), float(price[i]))
            nxt.visit(phase[i])
            cycles.append(nxt)
        else:
            c.visit(phase[i])
        prev_phase = phase[i]
    return cycles


def _funding_by_cycle(cycles: list[_Cycle], ts: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Sum of the payments in each cycle: up to and including its RESET fill's time."""
    out = np.zeros(len(cycles))
    if ts.size == 0:
        return out
    ends = np.array([c.end_ms for c in cycles[:-1]], dtype=np.int64)
    k = np.searchsorted(ends, ts, side="left")  # ts <= end of cycle k -> cycle k
    np.add.at(out, k, amount)
    return out


def run_cycles(fills: pd.DataFrame, funding: pd.DataFrame | None, summary: dict) -> pd.DataFrame:
    """``cycle_table`` of a run described by its summary.json: strategies from its config; the
    open last cycle ends at the data's last bar (its timestamp, as in equity.csv) and close."""
    cfg_wallets = (summary.get("config") or {}).get("wallets") or []
    strategies = {str(w.get("name")): str(w.get("strategy") or "") for w in cfg_wallets}
    for name, w in (summary.get("wallets") or {}).items():
        strategies.setdefault(str(name), str((w or {}).get("strategy") or ""))
    data = summary.get("data") or {}
    end_ms = int(to_epoch_ms([str(data["end"])])[0]) if data.get("end") else None
    return cycle_table(fills, funding, strategies=strategies, end_ms=end_ms, end_price=data.get("last_price"))


def cycle_totals(cycles: pd.DataFrame) -> pd.DataFrame:
    """Per wallet (in order of appearance): cycles and the sums of the money columns."""
    if len(cycles) == 0:
        return pd.DataFrame(columns=["wallet", "cycles", *MONEY_COLUMNS])
    g = cycles.groupby(cycles["wallet"].astype(str), sort=False)
    out = g[list(MONEY_COLUMNS)].sum(min_count=1)
    out.insert(0, "cycles", g.size())
    return out.reset_index()
