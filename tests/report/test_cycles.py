"""cycles.csv ("where the money went"): the decomposition adds up to the engine's summary to the
cent, on the bundled real month and on hand-computed SYNTHETIC paths."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hedgekit.engine.driver import PathDriver
from hedgekit.report.cycles import CYCLE_COLUMNS, cycle_table, cycle_totals
from hedgekit.report.html import CYCLE_CHART_IDS, build_report, load_output, money_totals
from hedgekit.report.results import fills_frame, funding_frame
from hedgekit.strategies.hedge_wallet import HedgeWallet, HedgeWalletParams
from hedgekit.strategies.long_wallet import LongWallet, LongWalletParams
from tests.report._fixture import figures
from tests.strategies.helpers import INSTRUMENT, UNIT_100

CENT = 0.01


# --------------------------------------------------------------------------- bundled month


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    """The bundled dual-wallet example on the bundled real month (Binance BTCUSDT 1m, May 2025)."""
    from hedgekit.cli import DEFAULT_EXAMPLE, example_path
    from hedgekit.config import load_config
    from hedgekit.engine.session import load_data, run_backtest

    cfg = load_config(example_path(DEFAULT_EXAMPLE))
    result = run_backtest(cfg, loaded=load_data(cfg, None, None, None))
    return result, result.write(tmp_path_factory.mktemp("month") / "out")


def test_month_cycles_add_up_to_the_summary_to_the_cent(month):
    _, out = month
    summary = json.loads((out / "summary.json").read_text())
    cycles = pd.read_csv(out / "cycles.csv")

    assert list(cycles.columns) == CYCLE_COLUMNS
    assert set(cycles["wallet"]) == set(summary["wallets"])
    for name, s in summary["wallets"].items():
        g = cycles[cycles["wallet"] == name]
        legs = g["long_legs"].sum() + g["short_legs"].sum() + g["reentry_gap"].sum()
        assert legs == pytest.approx(s["realized_pnl"], abs=CENT), name
        assert g["realized_pnl"].sum() == pytest.approx(s["realized_pnl"], abs=CENT), name
        assert g["fees"].sum() == pytest.approx(s["fees"], abs=CENT), name
        assert g["funding"].sum() == pytest.approx(s["funding"], abs=CENT), name
        assert g["fills"].sum() == s["fills"], name
        assert len(g) == s["resets"] + 1, name  # one row per RESET cycle, the last one open
        assert list(g["cycle"]) == list(range(len(g)))
        assert list(g["ended_by"]) == ["RESET"] * (len(g) - 1) + ["end"]
        assert s["resets"] > 3 and (g["reentry_gap"] != 0).any(), "the month must exercise RESETs"
    # Every row adds up on its own (the CSV rounds money to 8 decimals).
    legs = cycles["long_legs"] + cycles["short_legs"] + cycles["reentry_gap"]
    assert np.allclose(legs, cycles["realized_pnl"], atol=1e-6)
    assert np.allclose(cycles["realized_pnl"] - cycles["fees"] + cycles["funding"], cycles["net_pnl"], atol=1e-6)
    assert (cycles.loc[cycles["strategy"] == "long_wallet", "short_legs"] == 0).all()  # never short


def test_month_cycle_numbers_are_the_client_id_cycles(month):
    """Each row's fills are orders of that cycle (``hk-<wallet>-<cycle>-…``): the RESET fill is
    the last fill of the cycle it ends."""
    _, out = month
    fills = pd.read_csv(out / "fills.csv", dtype={"order_id": str})
    cycles = pd.read_csv(out / "cycles.csv")
    for name, g in fills.groupby("wallet", sort=False):
        rows = cycles[cycles["wallet"] == name]
        expected = np.repeat(rows["cycle"].to_numpy(), rows["fills"].to_numpy())
        from_ids = g["order_id"].str.split("-").str[2].astype(int).to_numpy()
        assert (from_ids == expected).all(), name
        resets = g[g["kind"] == "market_buy_full"]
        if len(resets):  # the hedge wallet's re-entries end their cycles, at their own price
            closed = rows[rows["ended_by"] == "RESET"]
            assert list(closed["end_price"]) == list(resets["price"])


def test_month_cycles_csv_is_the_result_object_rounded(month):
    result, out = month
    written = pd.read_csv(out / "cycles.csv")
    mem = result.cycles

    assert len(written) == len(mem)
    for col in ("long_legs", "short_legs", "reentry_gap", "fees", "funding", "net_pnl"):
        assert np.allclose(written[col], mem[col].astype(float), atol=1e-8), col
    assert (written["phases"] == mem["phases"]).all()


def test_month_report_shows_where_the_money_went(month):
    _, out = month
    summary = json.loads((out / "summary.json").read_text())
    text = build_report(out).read_text()
    figs = figures(text)

    assert 'id="where-the-money-went"' in text and "Where the money went" in text
    assert 'id="money-table"' in text
    for cid in CYCLE_CHART_IDS:
        assert f'<div id="{cid}" class="chart">' in text and figs[cid]["data"], cid
    waterfalls = {t["meta"]["wallet"]: t for t in figs["chart-money"]["data"] if t["type"] == "waterfall"}
    assert set(waterfalls) == set(summary["wallets"])
    for name, tr in waterfalls.items():
        s = summary["wallets"][name]
        y = [float(v) for v in tr["y"]]
        long_legs, short_legs, gap, minus_fees, funding, net, open_position, change = y
        assert long_legs + short_legs + gap == pytest.approx(s["realized_pnl"], abs=CENT)
        assert -minus_fees == pytest.approx(s["fees"], abs=CENT)
        assert funding == pytest.approx(s["funding"], abs=CENT)
        assert net == pytest.approx(sum(y[:5]), abs=1e-6)
        assert change == pytest.approx(s["end_equity"] - s["start_equity"], abs=CENT)
        assert net + open_position == pytest.approx(change, abs=1e-6)
        assert list(tr["measure"]) == ["relative"] * 5 + ["total", "relative", "total"]
        bars = [t for t in figs["chart-cycles"]["data"] if (t.get("meta") or {}).get("wallet") == name
                and t["meta"]["role"] == "cycle-part"]
        assert {t["meta"]["part"] for t in bars} == {"long_legs", "short_legs", "reentry_gap", "fees", "funding"}
        assert all(len(t["x"]) == s["resets"] + 1 for t in bars)


def test_report_without_cycles_csv_recomputes_from_fills(month, tmp_path):
    """A folder written before cycles.csv existed: same legs and fees from fills.csv, funding per
    wallet from summary.json."""
    _, out = month
    old = tmp_path / "old"
    old.mkdir()
    for name in ("fills.csv", "orders.csv", "equity.csv", "summary.json"):
        (old / name).write_bytes((out / name).read_bytes())

    run = load_output(old)
    new = load_output(out)

    assert run.cycles_source == "fills.csv" and new.cycles_source == "cycles.csv"
    assert run.cycles["funding"].isna().all()
    a, b = money_totals(run).set_index("wallet"), money_totals(new).set_index("wallet")
    for col in ("cycles", "long_legs", "short_legs", "reentry_gap", "fees", "funding", "net_pnl"):
        assert np.allclose(a[col].astype(float), b[col].astype(float), atol=CENT), col
    assert "recomputed from fills.csv" in build_report(old).read_text()


# --------------------------------------------------------------------------- SYNTHETIC paths


def decompose(driver: PathDriver, strategy: str) -> pd.DataFrame:
    name = driver.strategy.wallet
    fills = fills_frame([(name, driver.venue, driver.runner.log)])
    funding = funding_frame([(name, driver.venue)])
    return cycle_table(fills, funding, strategies={name: strategy}, end_ms=driver.ts,
                       end_price=driver.venue.last_price)


@pytest.mark.parametrize("order", ["fifo", "reverse"])
def test_hedge_wallet_cycles_by_hand(order):
    """SYNTHETIC path, U = 100 from P0 = 1000, taker fee 5 bp, lot 0.0001, N = 4000:
    cycle 0 is SPEC §4's worked example 0 → 7 → 6 → 3 → 2 → 6 (re-entry at the exit price:
    no gap); cycle 1 exits at 1700, shorts, is squeezed and re-enters at 1800 (a gap)."""
    fee = 0.0005
    params = HedgeWalletParams(allocation=4000.0, leverage=1.0, unit=UNIT_100)
    d = PathDriver(HedgeWallet("hedge", INSTRUMENT, params), cash=4000.0, leverage=2.0,
                   trigger_order=order, taker_fee=fee)
    d.start(1000.0)                  # market_buy 4 @ 1000
    d.path(1, 2, 3, 4, 5, 6, 7)
    d.fund(0.0001)                   # long 4 pays 4 × 1700 × 0.0001 = 0.68
    d.path(6, 5, 4, 3, 2)            # exit 4 @ 1600 + short 0.625 @ 1600; shorts @ 1500, 1400, 1300
    d.fund(0.0001)                   # short 2.775 receives 2.775 × 1200 × 0.0001 = 0.333
    d.path(3, 4, 5, 6)               # covers @ 1300 (0.625), 1400, 1500, 1600 -> RESET @ 1600
    d.path(1, 2)                     # cycle 1: P0 = 1600, long 3.9768
    d.fund(-0.0002)                  # long receives 3.9768 × 1800 × 0.0002
    d.path(1, 0, 1, 2)               # exit @ 1700 + short 0.9352, short 0.9937 @ 1600, covers @ 1700, 1800

    rows = decompose(d, "hedge_wallet").set_index("cycle")

    # Cycle 0: long 4 × (1600 − 1000); shorts sold 0.625@1600, 0.6666@1500, 0.7142@1400,
    # 0.7692@1300 and covered 0.625@1300 (the slid cover), 0.7692@1400, 0.7142@1500, 0.6666@1600.
    sold = 0.625 * 1600 + 0.6666 * 1500 + 0.7142 * 1400 + 0.7692 * 1300
    covered = 0.625 * 1300 + 0.7692 * 1400 + 0.7142 * 1500 + 0.6666 * 1600
    assert sold - covered == pytest.approx(-27.5)
    fees0 = fee * (4 * 1000 + 4 * 1600 + sold + covered)
    cash0 = 4000 + 2400 - 27.5 - fees0 + (-0.68 + 0.333)  # at the RESET: all of it × 1 re-bought
    q1 = 3.9768
    assert q1 == np.floor(cash0 / 1600 * 10_000) / 10_000
    r0 = rows.loc[0]
    assert r0["phases"] == "ADVANCE RETRACEMENT DECLINE RECOVERY RESET"
    assert (r0["start_price"], r0["end_price"], r0["ended_by"], r0["fills"]) == (1000.0, 1600.0, "RESET", 11)
    assert r0["long_legs"] == pytest.approx(2400.0, abs=1e-9)
    assert r0["short_legs"] == pytest.approx(-27.5, abs=1e-9)
    assert r0["reentry_gap"] == pytest.approx(0.0, abs=1e-9)  # re-bought at the exit price
    assert r0["fees"] == pytest.approx(fees0 + fee * q1 * 1600, abs=1e-9)  # its RESET buy included
    assert r0["funding"] == pytest.approx(-0.68 + 0.333, abs=1e-9)

    # Cycle 1: F = equity after the re-entry / 4; long q1 × (1700 − 1600); shorts 0.9352 @ 1700
    # and 0.9937 @ 1600 covered at 1800 and 1700; re-entry q2 @ 1800 after exiting at 1700.
    frag = (cash0 - fee * q1 * 1600) / 4
    s1, s0 = np.floor(frag / 1700 * 10_000) / 10_000, np.floor(frag / 1600 * 10_000) / 10_000
    assert (s1, s0) == (0.9352, 0.9937)
    short1 = s1 * (1700 - 1800) + s0 * (1600 - 1700)
    fees1 = fee * (q1 * 1700 + s1 * 1700 + s0 * 1600 + s0 * 1700 + s1 * 1800)
    fund1 = q1 * 1800 * 0.0002
    cash1 = cash0 - fee * q1 * 1600 + q1 * 100 + short1 - fees1 + fund1
    q2 = np.floor(cash1 / 1800 * 10_000) / 10_000
    assert q2 == pytest.approx(3.644)
    gap1 = min(q2, q1) * (1700 - 1800)  # re-bought q2 of the q1 coins exited at 1700, at 1800
    r1 = rows.loc[1]
    assert r1["phases"] == "ADVANCE RETRACEMENT RESET"
    assert (r1["start_price"], r1["end_price"], r1["ended_by"], r1["fills"]) == (1600.0, 1800.0, "RESET", 6)
    assert r1["reentry_gap"] == pytest.approx(-364.4, abs=1e-9) and gap1 == pytest.approx(-364.4)
    # As if held through: q1 × (1700 − 1600) realized, plus the q2 re-bought coins × (1800 − 1700).
    assert r1["long_legs"] == pytest.approx(q1 * 100 - gap1, abs=1e-9)
    assert r1["short_legs"] == pytest.approx(short1, abs=1e-9)
    assert r1["realized_pnl"] == pytest.approx(q1 * 100 + short1, abs=1e-9)
    assert r1["fees"] == pytest.approx(fees1 + fee * q2 * 1800, abs=1e-9)
    assert r1["funding"] == pytest.approx(fund1, abs=1e-9)
    assert r1["net_pnl"] == pytest.approx(q1 * 100 + short1 - fees1 - fee * q2 * 1800 + fund1, abs=1e-9)

    # Cycle 2 is open: long q2 since the last RESET, nothing realized yet.
    r2 = rows.loc[2]
    assert (r2["ended_by"], r2["fills"], r2["phases"], r2["start_price"]) == ("end", 0, "ADVANCE", 1800.0)
    assert r2[["long_legs", "short_legs", "reentry_gap", "fees", "funding"]].abs().sum() == 0

    # And the columns add up to the venue's own books.
    v = d.venue
    assert rows["realized_pnl"].sum() == pytest.approx(v.realized_pnl, abs=1e-9)
    assert rows["fees"].sum() == pytest.approx(v.fees_paid, abs=1e-9)
    assert rows["funding"].sum() == pytest.approx(v.funding_paid, abs=1e-9)


def test_long_wallet_cycle_by_hand():
    """SYNTHETIC: SPEC §3's worked example 0 → 7 → 3 → 2 → 6 with fixed buy fragments (N/4 =
    1000 USD), no fees. Sells 1 coin each at 1600, 1500, 1400, 1300 (exit average 1450), buys
    back 1000 USD each at 1300, 1400, 1500, 1600 (the last one is the RESET)."""
    params = LongWalletParams(allocation=4000.0, leverage=1.0, unit=UNIT_100, buy_fragment="fixed")
    d = PathDriver(LongWallet("long", INSTRUMENT, params), cash=4000.0, leverage=2.0)
    d.start(1000.0)
    d.path(1, 2, 3, 4, 5, 6, 7, 6, 5, 4, 3, 2, 3, 4, 5, 6)

    rows = decompose(d, "long_wallet").set_index("cycle")

    bought = {1300: 0.7692, 1400: 0.7142, 1500: 0.6666, 1600: 0.6250}
    gap = sum(q * (1450 - p) for p, q in bought.items())  # fewer coins than sold: all re-bought
    assert gap == pytest.approx(24.01)
    r0 = rows.loc[0]
    assert r0["phases"] == "ADVANCE RETRACEMENT DECLINE RECOVER RESET"
    assert (r0["end_price"], r0["ended_by"], r0["fills"]) == (1600.0, "RESET", 9)
    assert r0["realized_pnl"] == pytest.approx(600 + 500 + 400 + 300, abs=1e-9)
    assert r0["reentry_gap"] == pytest.approx(gap, abs=1e-9)
    assert r0["long_legs"] == pytest.approx(1800 - gap, abs=1e-9)
    assert r0["short_legs"] == 0 and r0["fees"] == 0 and r0["funding"] == 0
    assert list(rows.index) == [0, 1] and rows.loc[1, "ended_by"] == "end"


def test_protective_closes_and_liquidations_are_legs():
    """SYNTHETIC fills: whatever closes a long (a protective_close, a liquidation) is a long leg,
    whatever closes a short a short leg; a long re-bought after them carries their gap."""
    fills = pd.DataFrame([
        # ts, kind, side, qty, price, fee, phase, position after, cumulative realized
        (1, "market_buy", "buy", 2.0, 100.0, 0.1, "ADVANCE", 2.0, 0.0),
        (2, "protective_close", "sell", 0.5, 90.0, 0.1, "RETRACEMENT", 1.5, -5.0),
        (3, "stop_entry_buy", "buy", 0.5, 95.0, 0.1, "ADVANCE", 2.0, -5.0),  # re-bought 5 above the exit
        (4, "liquidation", "sell", 2.0, 80.0, 0.2, "STOPPED", 0.0, -5.0 + 2.0 * (80.0 - 98.75)),
    ], columns=["ts", "kind", "side", "qty", "price", "fee", "phase", "position", "realized_pnl"])
    fills["wallet"] = "w"
    short = fills.copy()
    short["side"] = short["side"].map({"buy": "sell", "sell": "buy"})
    short["position"] = -short["position"]
    short["realized_pnl"] = [0.0, 5.0, 5.0, 5.0 + 2.0 * (98.75 - 80.0)]
    short["wallet"] = "s"

    rows = cycle_table(pd.concat([fills, short]), strategies={"w": "long_wallet", "s": "hedge_wallet"})
    tot = cycle_totals(rows).set_index("wallet")

    w = tot.loc["w"]
    assert w["realized_pnl"] == pytest.approx(-5.0 - 37.5)
    assert w["reentry_gap"] == pytest.approx(0.5 * (90 - 95))
    assert w["long_legs"] == pytest.approx(w["realized_pnl"] - w["reentry_gap"])
    assert w["short_legs"] == 0 and w["fees"] == pytest.approx(0.5)
    s = tot.loc["s"]
    assert s["short_legs"] == pytest.approx(5.0 + 37.5) and s["long_legs"] == 0 and s["reentry_gap"] == 0
    assert rows["funding"].isna().all()  # funding not given: unknown, not zero


def test_grid_hedge_is_one_row_without_a_gap():
    fills = pd.DataFrame([
        (1, "grid_sell", "sell", 1.0, 100.0, 0.0, "ACTIVE", -1.0, 0.0),
        (2, "grid_buy", "buy", 1.0, 98.0, 0.0, "ACTIVE", 0.0, 2.0),
        (3, "grid_buy", "buy", 1.0, 97.0, 0.0, "ACTIVE", 1.0, 2.0),
        (4, "grid_sell", "sell", 1.0, 99.0, 0.0, "ACTIVE", 0.0, 4.0),
        (5, "grid_buy", "buy", 1.0, 101.0, 0.0, "ADVANCE", 1.0, 4.0),  # a phase name never splits it
    ], columns=["ts", "kind", "side", "qty", "price", "fee", "phase", "position", "realized_pnl"])
    fills["wallet"] = "grid"

    rows = cycle_table(fills, strategies={"grid": "grid_hedge"}, end_ms=10, end_price=102.0)

    assert len(rows) == 1
    r = rows.iloc[0]
    assert (r["short_legs"], r["long_legs"], r["reentry_gap"]) == (2.0, 2.0, 0.0)
    assert (r["end_price"], r["ended_by"], r["fills"]) == (102.0, "end", 5)
