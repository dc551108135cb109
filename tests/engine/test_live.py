"""PAPER / RECOMMENDATION on replayed and live (local websocket) prices, crash recovery,
status and flatten."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from hedgekit.cli import app, example_path
from hedgekit.config import load_config, parse_config
from hedgekit.engine.live import LiveEngine
from hedgekit.engine.session import load_data, run_backtest
from hedgekit.feeds.history import BUNDLED_BTC_1M, bundled_path, load_candles
from hedgekit.feeds.replay import ReplayFeed
from hedgekit.report.results import export_run
from hedgekit.store.journal import Journal, JournalError

from ..feeds.binance_ws_server import BTC_FEED, BinanceWsServer, load_messages, market_trades
from .crash_child import child_env

REPO = Path(__file__).resolve().parents[2]


def slice_csv(tmp_path: Path, days: float) -> Path:
    """The first ``days`` of the bundled real BTCUSDT 1m data as a CSV (a smaller replay)."""
    c = load_candles(bundled_path(BUNDLED_BTC_1M))
    n = int(days * 1440)
    frame = pd.DataFrame({"timestamp": c.ts[:n], "open": c.open[:n], "high": c.high[:n],
                          "low": c.low[:n], "close": c.close[:n], "volume": c.volume[:n]})
    path = tmp_path / "btc_slice.csv"
    frame.to_csv(path, index=False)
    return path


def busy_config(tmp_path: Path) -> Path:
    """Dual wallet with small units, so a short replay has many orders and fills."""
    data = yaml.safe_load(example_path("dual_wallet.yaml").read_text())
    for w in data["wallets"]:
        w["unit"] = {"mode": "percent", "value": 0.002}
    data["venue"]["funding"] = {"rate": 0.0001}
    data["data"] = {}
    path = tmp_path / "busy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def paper(cfg, journal: Journal, source_path: Path, mode: str = "paper", printer=None) -> LiveEngine:
    loaded = load_data(cfg, str(source_path))
    engine = LiveEngine(cfg, mode=mode, journal=journal, source=f"replay:{source_path}",
                        funding=loaded.funding, printer=printer or (lambda _line: None))
    engine.open(0)
    asyncio.run(engine.run(ReplayFeed(source_path, speed=None, resume_after_seq=engine.resume_after)))
    return engine


def test_paper_replay_writes_the_backtests_fills_and_orders(tmp_path):
    cfg = load_config(example_path("dual_wallet.yaml"))
    data = bundled_path(BUNDLED_BTC_1M)
    journal = Journal.open(tmp_path / "j.db")
    engine = paper(cfg, journal, data)
    live_out = export_run(journal, engine.run_id, cfg, tmp_path / "paper")
    bt_out = run_backtest(cfg).write(tmp_path / "bt")
    assert (live_out / "fills.csv").read_bytes() == (bt_out / "fills.csv").read_bytes()
    assert (live_out / "orders.csv").read_bytes() == (bt_out / "orders.csv").read_bytes()
    assert (bt_out / "fills.csv").read_text().count("\n") > 100


def test_recommendation_prints_the_orders_paper_places(tmp_path):
    cfg = load_config(busy_config(tmp_path))
    data = slice_csv(tmp_path, 2)
    lines: list[str] = []
    rec_journal = Journal.open(tmp_path / "rec.db")
    paper(cfg, rec_journal, data, mode="recommendation", printer=lines.append)
    pj = Journal.open(tmp_path / "paper.db")
    engine = paper(cfg, pj, data)
    placed = [line for line in lines if line.startswith("RECOMMEND place")]
    assert len(placed) > 50
    assert placed[0] == "RECOMMEND place market_buy BUY 0.209 BTC at market (wallet long, phase STARTING)"
    inst = cfg.instrument_model()
    expected = []
    for w in cfg.wallets:
        for e in pj.order_events(engine.run_id, w.name):
            if e.event == "placed":
                at = f" @ {e.trigger:,.{inst.price_decimals}f}" if e.trigger is not None else " at market"
                expected.append((e.ts, w.name, f"{e.kind} {str(e.side).upper()} {e.qty:.{inst.qty_decimals}f} BTC{at}"))
    got = [line.removeprefix("RECOMMEND place ").split(" (wallet ")[0] for line in placed]
    wallets = [line.split(" (wallet ")[1].split(",")[0].rstrip(")") for line in placed]
    # Same actions in the same order, per wallet.
    for name in ("long", "hedge"):
        assert [g for g, w in zip(got, wallets, strict=True) if w == name] == [x[2] for x in expected if x[1] == name]
    assert "(wallet long, unit -1, phase ADVANCE)" in "\n".join(lines)


class _Proc:
    """A CLI process whose stderr goes to a file (a pipe nobody reads would block it).

    ``kill`` options (see tests/engine/crash_child.py) make it SIGKILL itself at a chosen
    point; with ``--feed stdin`` the test hands it bars with ``send`` and ends with ``close``."""

    def __init__(self, args: list[str], env: dict[str, str] | None, log: Path, kill: list[str] | None = None) -> None:
        self.log = log
        entry = ["tests.engine.crash_child", *kill, "--"] if kill else ["hedgekit.cli"]
        stdin = subprocess.PIPE if "stdin" in args else subprocess.DEVNULL
        with log.open("ab") as err:
            self.p = subprocess.Popen(
                [sys.executable, "-m", *entry, "--log-dir", str(log.parent / "logs"), *args],
                cwd=REPO, env={**child_env(), **(env or {})}, stdin=stdin, stdout=subprocess.DEVNULL,
                stderr=err, text=True,
            )

    def send(self, lines: list[str]) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write("".join(lines))
        self.p.stdin.flush()

    def close(self) -> None:
        assert self.p.stdin is not None
        self.p.stdin.close()

    def wait(self, timeout: float) -> int:
        return self.p.wait(timeout=timeout)

    def poll(self) -> int | None:
        return self.p.poll()

    def send_signal(self, sig: int) -> None:
        self.p.send_signal(sig)

    @property
    def returncode(self) -> int | None:
        return self.p.returncode

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]


def _run_cli(args: list[str], env: dict[str, str] | None = None, kill: list[str] | None = None) -> _Proc:
    db = Path(args[args.index("--db") + 1])
    return _Proc(args, env, db.parent / f"{db.stem}.stderr.log", kill)


def csv_lines(path: Path) -> list[str]:
    """The bars of a CSV slice as the lines `--feed stdin` reads (header first)."""
    return path.read_text().splitlines(keepends=True)


def _snapshot(db: Path, cfg) -> tuple[str, str, list[float]]:
    j = Journal.open(db, readonly=True)
    run_id = j.runs()[-1].run_id
    out = export_run(j, run_id, cfg, db.parent / f"export_{db.stem}")
    positions = [s.position for s in j.wallet_status(run_id)]
    j.close()
    return (out / "fills.csv").read_text(), (out / "orders.csv").read_text(), positions


@pytest.mark.slow
def test_sigkill_at_random_points_loses_nothing_and_doubles_nothing(tmp_path):
    cfg_path = busy_config(tmp_path)
    cfg = load_config(cfg_path)
    data = slice_csv(tmp_path, 3)
    args = ["run", str(cfg_path), "--mode", "paper", "--feed", f"replay:{data}", "--speed", "max"]

    clean_db = tmp_path / "clean.db"
    p = _run_cli([*args, "--db", str(clean_db)])
    assert p.wait(timeout=180) == 0, p.tail()
    reference = _snapshot(clean_db, cfg)
    assert reference[0].count("\n") > 100, "the replay must trade a lot for the test to mean anything"

    crash_db = tmp_path / "crash.db"
    rng = random.Random(20261122)
    kills = intent_kills = 0
    # Alternate kills right after an intent is committed (before the venue answers) with
    # kills after a random number of inputs, then let one run finish. Crash points are
    # counted in intents and inputs, not seconds: the test is the same on a busy machine.
    for attempt in range(80):
        if kills >= 24:
            p = _run_cli([*args, "--db", str(crash_db)])  # enough crashes: let it finish
            p.wait(timeout=180)
        elif attempt % 2 == 0:
            p = _run_cli([*args, "--db", str(crash_db)], kill=["--kill-after-intent", str(rng.randint(1, 40))])
            if p.wait(timeout=180) == -signal.SIGKILL:
                kills += 1
                intent_kills += 1
        else:
            p = _run_cli([*args, "--db", str(crash_db)], kill=["--kill-after-input", str(rng.randint(1, 60))])
            if p.wait(timeout=180) == -signal.SIGKILL:
                kills += 1
        assert p.returncode in (0, -signal.SIGKILL), p.tail()
        if p.returncode == 0:
            break  # the run finished before it could be killed: nothing left to crash
    else:
        pytest.fail("the crashed run never got to finish")
    assert kills >= 20 and intent_kills >= 8, (kills, intent_kills)

    fills, orders, positions = _snapshot(crash_db, cfg)
    assert fills == reference[0], "fills differ from the uninterrupted run"
    assert orders == reference[1], "order events differ from the uninterrupted run"
    assert positions == reference[2]
    j = Journal.open(crash_db, readonly=True)
    run_id = j.runs()[-1].run_id
    for w in ("long", "hedge"):
        ids = [o.client_id for o in j.orders(run_id, w)]
        assert len(ids) == len(set(ids))
        assert not [o for o in j.orders(run_id, w) if o.status == "new"], "an intent never got an answer"
    assert len(j.runs()) == 1, "every restart must resume the same run"
    j.close()


def test_status_and_flatten_on_a_paper_journal(tmp_path):
    cfg = load_config(busy_config(tmp_path))
    data = slice_csv(tmp_path, 1)
    db = tmp_path / "j.db"
    journal = Journal.open(db)
    paper(cfg, journal, data)
    journal.close()
    runner = CliRunner()

    res = runner.invoke(app, ["status", "--db", str(db)])
    assert res.exit_code == 0, res.output
    for word in ("long", "hedge", "long_wallet", "hedge_wallet", "stop_loss"):
        assert word in res.output

    res = runner.invoke(app, ["flatten", "long", "--db", str(db)], input="n\n")
    assert res.exit_code != 0  # declined: nothing touched
    j = Journal.open(db, readonly=True)
    assert j.orders(j.runs()[-1].run_id, "long", working_only=True)
    j.close()

    res = runner.invoke(app, ["flatten", "long", "--db", str(db), "--yes"])
    assert res.exit_code == 0, res.output
    assert "flattened long" in res.output
    j = Journal.open(db, readonly=True)
    run_id = j.runs()[-1].run_id
    long_status = next(s for s in j.wallet_status(run_id) if s.wallet == "long")
    assert long_status.position == 0.0 and long_status.phase == "STOPPED"
    assert j.orders(run_id, "long", working_only=True) == []
    assert j.fills(run_id, "long")[-1].kind == "flatten"
    hedge_status = next(s for s in j.wallet_status(run_id) if s.wallet == "hedge")
    assert hedge_status.phase != "STOPPED"  # the other wallet is untouched
    j.close()

    res = runner.invoke(app, ["flatten", "nosuch", "--db", str(db), "--yes"])
    assert res.exit_code == 2 and "no wallet 'nosuch'" in res.output


@pytest.mark.parametrize("content", [b"this is not a database at all" * 10, b""])
def test_status_on_a_corrupt_file_is_a_clear_error_and_never_modifies_it(tmp_path, content):
    db = tmp_path / "hedgekit.db"
    db.write_bytes(content)
    before = (db.read_bytes(), db.stat().st_mtime_ns, sorted(os.listdir(tmp_path)))
    res = CliRunner().invoke(app, ["status", "--db", str(db)])
    assert res.exit_code == 2
    assert "hedgekit.db" in res.output and "error" in res.output
    with pytest.raises(JournalError):
        Journal.open(db)
    assert (db.read_bytes(), db.stat().st_mtime_ns, sorted(os.listdir(tmp_path))) == before


def test_foreign_sqlite_database_is_refused_untouched(tmp_path):
    import sqlite3

    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("create table customers (id integer primary key, name text)")
    con.commit()
    con.close()
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    res = CliRunner().invoke(app, ["flatten", "long", "--db", str(db), "--yes"])
    assert res.exit_code == 2 and "other.db" in res.output
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before


@pytest.mark.skipif(not BTC_FEED.is_file(), reason=f"{BTC_FEED} is not there (../shared/data)")
def test_paper_bot_follows_a_live_websocket_feed_through_a_disconnect(tmp_path):
    from hedgekit.feeds.live import BinanceTradeStream

    messages = load_messages(limit=1500)
    trades = market_trades(messages)
    cfg = parse_config({
        "wallets": [{"name": "long", "strategy": "long_wallet", "allocation": 1000, "leverage": 1,
                     "unit": {"mode": "fixed", "value": 2.0}}],
        "instrument": {"symbol": "BTCUSDT", "tick_size": 0.1, "lot_size": 0.001, "min_notional": 5},
    })
    journal = Journal.open(tmp_path / "live.db")
    engine = LiveEngine(cfg, mode="paper", journal=journal, source="live:test")
    engine.open(0)

    async def scenario() -> None:
        async with BinanceWsServer(messages, drop_after=600, resend=30) as server:
            feed = BinanceTradeStream("BTCUSDT", server.url, stale_after=0.5)
            task = asyncio.create_task(engine.run(feed))
            await server.wait_position(len(messages))
            deadline = time.monotonic() + 10
            while engine.wallets[0].seen < trades[-1][0] and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            engine.stop()
            await asyncio.wait_for(task, 10)  # the STALE after the end wakes the loop
            await feed.close()
            assert server.connections >= 2  # it did reconnect

    asyncio.run(scenario())
    status = journal.wallet_status(engine.run_id)[0]
    assert engine.wallets[0].seen == trades[-1][0]  # every trade reached the wallet, once
    assert status.last_price == trades[-1][2]
    fills = journal.fills(engine.run_id, "long")
    assert len(fills) > 3  # the wallet traded on those prices
    lo, hi = min(t[2] for t in trades), max(t[2] for t in trades)
    assert all(lo - 2 <= f.price <= hi + 2 for f in fills)
    journal.close()


def atr_busy_config(tmp_path: Path) -> Path:
    data = yaml.safe_load(busy_config(tmp_path).read_text())
    for w in data["wallets"]:
        w["unit"] = {"mode": "atr", "value": 3.0, "atr_period": 20}
    path = tmp_path / "atr.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_paper_replay_with_atr_units_matches_the_backtest_also_across_a_restart(tmp_path):
    """The live engine waits the backtest's warm-up (20 bars), computes the ATR from the bars
    it has seen, and keeps it in the checkpoint: a run stopped after day 1 and resumed on
    day 2 writes the backtest's fills."""
    cfg = load_config(atr_busy_config(tmp_path))
    full = slice_csv(tmp_path, 2)
    bt_out = run_backtest(cfg, data=str(full)).write(tmp_path / "bt")
    bt_fills = (bt_out / "fills.csv").read_text()
    assert bt_fills.count("\n") > 50

    one = paper(cfg, Journal.open(tmp_path / "one.db"), full)
    one_out = export_run(one.journal, one.run_id, cfg, tmp_path / "one")
    assert (one_out / "fills.csv").read_text() == bt_fills
    assert (one_out / "orders.csv").read_bytes() == (bt_out / "orders.csv").read_bytes()
    first = load_candles(full)
    assert bt_fills.splitlines()[1].startswith(pd.Timestamp(int(first.ts[20]), unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M"))

    # Same source path: day 1 only, then both days (the run resumes from its checkpoints).
    day = full.with_name("day.csv")
    pd.read_csv(full).iloc[:1440].to_csv(day, index=False)
    staged = tmp_path / "staged.csv"
    journal = Journal.open(tmp_path / "two.db")
    staged.write_bytes(day.read_bytes())
    paper(cfg, journal, staged)
    staged.write_bytes(full.read_bytes())
    two = paper(cfg, journal, staged)
    assert len(journal.runs()) == 1
    two_out = export_run(journal, two.run_id, cfg, tmp_path / "two")
    assert (two_out / "fills.csv").read_text() == bt_fills


def sigma_less_grid_config(tmp_path: Path) -> Path:
    """A grid hedge that estimates σ from a 3-day warm-up, a grid with a σ (its rebalances use
    the estimate from the same warm-up) and a long wallet with ATR units (20-bar warm-up)."""
    data = yaml.safe_load(example_path("grid_hedge.yaml").read_text())
    del data["grid"]["volatility"]
    data["grid"]["volatility_lookback_days"] = 3
    data.pop("data")
    cfg = parse_config(data).model_dump(mode="json", exclude_none=True)
    grid = cfg["wallets"][0]
    cfg["wallets"] += [
        {**grid, "name": "grid2", "grid": {**grid["grid"], "volatility": 0.02}},
        {"name": "long", "strategy": "long_wallet", "allocation": 20000, "leverage": 1,
         "unit": {"mode": "atr", "value": 3.0, "atr_period": 20}},
    ]
    path = tmp_path / "grid_nv.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_paper_replay_of_a_grid_without_volatility_matches_the_backtest_also_across_a_restart(tmp_path):
    """The live engine waits the backtest's warm-up (3 days: longer than the ATR's 20 bars),
    seeds every grid with those bars and starts on the backtest's first bar; a run stopped in
    the middle of the warm-up and resumed writes the same fills."""
    cfg = load_config(sigma_less_grid_config(tmp_path))
    full = slice_csv(tmp_path, 5)
    bt = run_backtest(cfg, data=str(full))
    bt_out = bt.write(tmp_path / "bt")
    bt_fills = (bt_out / "fills.csv").read_text()
    assert {"grid", "grid2", "long"} <= set(bt.fills.wallet)
    assert bt.summary["data"]["warmup_bars"] == 3 * 1440

    one = paper(cfg, Journal.open(tmp_path / "one.db"), full)
    one_out = export_run(one.journal, one.run_id, cfg, tmp_path / "one")
    assert (one_out / "fills.csv").read_text() == bt_fills
    assert (one_out / "orders.csv").read_bytes() == (bt_out / "orders.csv").read_bytes()
    first = load_candles(full)
    start = pd.Timestamp(int(first.ts[3 * 1440]), unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M")
    assert bt_fills.splitlines()[1].startswith(start)

    # Stopped after 2 of the 3 warm-up days, then resumed with the whole file.
    staged = tmp_path / "staged.csv"
    pd.read_csv(full).iloc[:2 * 1440].to_csv(staged, index=False)
    journal = Journal.open(tmp_path / "two.db")
    stopped = paper(cfg, journal, staged)
    assert not any(w.started for w in stopped.wallets)
    assert journal.wallet_status(stopped.run_id) == []  # no checkpoint before the start
    staged.write_bytes(full.read_bytes())
    two = paper(cfg, journal, staged)
    assert len(journal.runs()) == 1
    two_out = export_run(journal, two.run_id, cfg, tmp_path / "two")
    assert (two_out / "fills.csv").read_text() == bt_fills
    assert (two_out / "orders.csv").read_bytes() == (bt_out / "orders.csv").read_bytes()


def test_the_warm_up_rule_is_the_same_for_the_backtest_and_the_live_engine():
    from hedgekit.engine.session import Warmup

    rng = random.Random(7)
    for _ in range(200):
        ts = np.cumsum([rng.choice([60_000, 60_000, 3_600_000, 86_400_000]) for _ in range(rng.randint(1, 400))])
        w = Warmup(bars=rng.choice([0, 2, 14, 300]), days=rng.choice([0, 2, 3]))
        first = next((i for i in range(len(ts)) if w.over(i, int(ts[i]), int(ts[0]))), len(ts))
        assert min(w.cut(ts), len(ts)) == first
