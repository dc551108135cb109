"""PAPER: the drawdown guard trips at the same input as the backtest, and stays tripped."""

from __future__ import annotations

from hedgekit.config import load_config
from hedgekit.engine.live import load_snapshot
from hedgekit.engine.session import run_backtest
from hedgekit.report.results import export_run
from hedgekit.store.journal import Journal
from hedgekit.strategies.long_wallet import LongWallet

from .test_equivalence import with_drawdown
from .test_live import busy_config, paper, slice_csv


def test_paper_replay_stops_on_the_drawdown_limit_like_the_backtest(tmp_path):
    cfg = with_drawdown(load_config(busy_config(tmp_path)), {"long": 0.02, "hedge": 0.03})
    data = slice_csv(tmp_path, 2)
    journal = Journal.open(tmp_path / "j.db")
    engine = paper(cfg, journal, data)
    live_out = export_run(journal, engine.run_id, cfg, tmp_path / "paper")
    bt = run_backtest(cfg, data=str(data))
    bt_out = bt.write(tmp_path / "bt")
    assert (live_out / "fills.csv").read_bytes() == (bt_out / "fills.csv").read_bytes()
    assert (live_out / "orders.csv").read_bytes() == (bt_out / "orders.csv").read_bytes()
    for w in engine.wallets:
        assert w.guard is not None and w.guard.done
        stop = bt.summary["wallets"][w.name]["drawdown_stop"]
        assert w.guard.stop.as_dict() == stop
    status = {s.wallet: s for s in journal.wallet_status(engine.run_id)}
    assert {s.phase for s in status.values()} == {"STOPPED"}
    assert all(s.position == 0 for s in status.values())
    assert journal.orders(engine.run_id, "long", working_only=True) == []


def test_a_tripped_guard_survives_a_restart(tmp_path):
    cfg = with_drawdown(load_config(busy_config(tmp_path)), {"long": 0.02})
    data = slice_csv(tmp_path, 1)
    journal = Journal.open(tmp_path / "j.db")
    first = paper(cfg, journal, data)
    _, blob = journal.load_checkpoint(first.run_id, "long")
    snap = load_snapshot(blob, LongWallet)
    assert snap.guard is not None and snap.guard.done and snap.guard.stop is not None
    before = export_run(journal, first.run_id, cfg, tmp_path / "before")
    second = paper(cfg, journal, data)  # resumes the unfinished run from the checkpoints
    assert second.run_id == first.run_id
    long = next(w for w in second.wallets if w.name == "long")
    assert long.guard.stop == snap.guard.stop and long.runner.strategy.stopped
    after = export_run(journal, second.run_id, cfg, tmp_path / "after")
    assert (after / "fills.csv").read_bytes() == (before / "fills.csv").read_bytes()
