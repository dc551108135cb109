"""`hedgekit flatten` while `hedgekit run` runs: one writer per run (the lease), the flatten is
carried out by the running engine exactly once, a dead engine's lease does not block it, a
second `run` of the same run is refused, and a crash in the middle of a request loses nothing
and doubles nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from loguru import logger
from typer.testing import CliRunner

from hedgekit.cli import app
from hedgekit.engine.live import LEASE_TIMEOUT_ENV
from hedgekit.feeds.history import load_candles
from hedgekit.store.journal import Journal, JournalError

from .test_live import REPO, _run_cli, busy_config, csv_lines, slice_csv


def _engine(tmp_path: Path, cfg_path: Path, db: Path, kill: list[str] | None = None, env: dict[str, str] | None = None):
    """`hedgekit run --feed stdin` with the first half of a day of real 1m bars handed in;
    it then waits for the test's next bars, so it is running for as long as the test needs,
    however fast or slow the machine. Returns (process, CLI args, all bar lines)."""
    lines = csv_lines(slice_csv(tmp_path, 1))
    args = ["run", str(cfg_path), "--mode", "paper", "--feed", "stdin", "--db", str(db)]
    engine = _run_cli(args, env=env, kill=kill)
    engine.send(lines[: len(lines) // 2])
    return engine, args, lines


def _finish(engine, lines: list[str], start: int) -> None:
    engine.send(lines[start:])
    engine.close()


def mixed_config(tmp_path: Path) -> Path:
    """`hedge` trades all day (small units); `long` (1 % units) keeps its position all of the
    first day, so a flatten at any moment has a position to close."""
    data = yaml.safe_load(busy_config(tmp_path).read_text())
    data["wallets"][0]["unit"] = {"mode": "percent", "value": 0.01}
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """`hedgekit ARGS` in another process; its exit code, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "hedgekit.cli", "--log-dir", str(tmp_path / "logs"), *args],
        cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout,
    )


def _wait_until_long_trades(db: Path, proc, timeout: float = 30) -> None:
    """Until the engine holds the run and wallet `long` has a position."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.tail()
        try:
            with Journal.open(db, readonly=True) as j:
                runs = j.runs()
                if runs and j.lease(runs[-1].run_id) is not None:
                    long = [s for s in j.wallet_status(runs[-1].run_id) if s.wallet == "long"]
                    if long and long[0].position != 0:
                        return
        except JournalError:
            pass  # not created yet
        time.sleep(0.1)
    pytest.fail("the engine never started trading")


def _assert_flattened_once(j: Journal, run_id: int) -> None:
    """`long` was flattened exactly once and stayed flat; its strategy is stopped."""
    flat_orders = [o for o in j.orders(run_id, "long") if o.kind == "flatten"]
    assert [(o.status, o.reduce_only, o.order_type) for o in flat_orders] == [("filled", True, "market")]
    fills = j.fills(run_id, "long")
    assert [f.kind for f in fills].count("flatten") == 1
    assert fills[-1].kind == "flatten"  # nothing traded after it: never re-opened
    assert fills[-1].position == 0.0 and abs(j.position_from_fills(run_id, "long")) < 1e-9
    long = next(s for s in j.wallet_status(run_id) if s.wallet == "long")
    assert (long.position, long.phase) == (0.0, "STOPPED")
    assert j.orders(run_id, "long", working_only=True) == []
    (req,) = j.requests(run_id)
    assert (req.wallet, req.kind, req.status) == ("long", "flatten", "done")
    assert req.result is not None and req.result.startswith("flattened long: cancelled")


def test_flatten_while_the_engine_runs_is_carried_out_by_the_engine_exactly_once(tmp_path):
    db = tmp_path / "j.db"
    engine, args, lines = _engine(tmp_path, mixed_config(tmp_path), db)
    _wait_until_long_trades(db, engine)

    # a second engine on the same run is refused, naming the holder (in this process: quick)
    try:
        second = CliRunner().invoke(app, ["--log-dir", str(tmp_path / "logs"), *args])
    finally:
        logger.remove()  # the CLI pointed the logger at its own stderr and log folder
    assert second.exit_code == 2, second.output
    assert f"run 1 is held by {engine.p.pid}@" in second.output and "heartbeat" in second.output
    assert "s ago" in second.output and engine.poll() is None

    res = _cli(tmp_path, "flatten", "long", "--db", str(db), "--yes")
    assert res.returncode == 0, res.stderr
    assert "flattened long: cancelled" in res.stdout and "closed +" in res.stdout
    assert engine.poll() is None, "the run must still be going (else this tests nothing)"
    with Journal.open(db, readonly=True) as j:
        assert j.lease(1).holder.startswith(f"{engine.p.pid}@")  # type: ignore[union-attr]
        flattened_at = next(f for f in j.fills(1, "long") if f.kind == "flatten").ts

    _finish(engine, lines, len(lines) // 2)
    assert engine.wait(timeout=60) == 0, engine.tail()
    with Journal.open(db, readonly=True) as j:
        (run,) = j.runs()
        assert run.status == "finished" and j.lease(run.run_id) is None  # released on exit
        _assert_flattened_once(j, run.run_id)
        # the engine went on with the other wallet to the end of the replay
        hedge = next(s for s in j.wallet_status(run.run_id) if s.wallet == "hedge")
        assert hedge.phase != "STOPPED"
        assert hedge.last_price_ts == int(load_candles(slice_csv(tmp_path, 1)).ts[-1])
        assert any(f.ts > flattened_at for f in j.fills(run.run_id, "hedge"))


def test_a_killed_engines_lease_goes_stale_then_flatten_does_it_and_a_new_run_resumes(tmp_path):
    db = tmp_path / "j.db"
    env = {LEASE_TIMEOUT_ENV: "1.5"}
    engine, args, lines = _engine(tmp_path, mixed_config(tmp_path), db, env=env)
    _wait_until_long_trades(db, engine)
    engine.send_signal(signal.SIGKILL)
    # Not reaped yet: its pid still exists, as if it ran on another machine, so only its
    # heartbeat can tell it is dead. flatten waits for it, then does the flatten itself.
    res = _cli(tmp_path, "flatten", "long", "--db", str(db), "--yes", "--wait", "20", env=env)
    assert res.returncode == 0, res.stderr
    assert "flattened long: cancelled" in res.stdout
    assert engine.wait(timeout=10) == -signal.SIGKILL
    with Journal.open(db, readonly=True) as j:
        assert j.lease(1) is None  # the flatten gave it back
        assert j.runs()[0].ended_ts is None  # the run was killed midway

    resumed = _run_cli(args, env=env)  # the same stream again: what was done is skipped
    _finish(resumed, lines, 0)
    assert resumed.wait(timeout=60) == 0, resumed.tail()
    with Journal.open(db, readonly=True) as j:
        (run,) = j.runs()  # resumed, not a new run
        assert run.status == "finished"
        _assert_flattened_once(j, run.run_id)
        assert next(s for s in j.wallet_status(run.run_id) if s.wallet == "hedge").phase != "STOPPED"


def test_an_engine_killed_inside_a_flatten_does_it_once_after_the_restart(tmp_path):
    db = tmp_path / "j.db"
    engine, args, lines = _engine(tmp_path, mixed_config(tmp_path), db, kill=["--kill-in-request"])
    _wait_until_long_trades(db, engine)

    # no waiting: the request stays pending, and says so
    res = _cli(tmp_path, "flatten", "long", "--db", str(db), "--yes", "--wait", "0")
    assert res.returncode == 1, res.stderr
    assert "did not carry out flatten request #1" in res.stderr and "stays pending" in res.stderr
    # the engine takes it, closes the position in memory (the market order's intent is
    # committed first), then dies before the batch that would close the request
    assert engine.wait(timeout=30) == -signal.SIGKILL, engine.tail()
    with Journal.open(db, readonly=True) as j:
        assert [r.status for r in j.requests(1)] == ["pending"]
        assert [o.status for o in j.orders(1, "long") if o.kind == "flatten"] == ["new"]
        assert not [f for f in j.fills(1, "long") if f.kind == "flatten"]
    status = CliRunner().invoke(app, ["status", "--db", str(db)])
    assert "pending: flatten long (request #1" in status.output

    resumed = _run_cli(args)
    _finish(resumed, lines, 0)
    assert resumed.wait(timeout=60) == 0, resumed.tail()
    with Journal.open(db, readonly=True) as j:
        (run,) = j.runs()
        assert run.status == "finished"
        _assert_flattened_once(j, run.run_id)


def test_flatten_during_the_warm_up_keeps_the_wallet_from_ever_trading(tmp_path):
    """An emergency stop of a wallet that has not traded yet (warming up, or the run just
    opened) is not "nothing to flatten": the wallet stays out for the rest of the run, also
    after a restart, while the other wallet trades as usual."""
    from hedgekit.config import load_config
    from hedgekit.engine.live import LiveEngine
    from hedgekit.engine.requests import flatten_wallet
    from hedgekit.engine.session import load_data
    from hedgekit.feeds.replay import ReplayFeed

    cfg = load_config(busy_config(tmp_path))
    source = slice_csv(tmp_path, 0.5)
    db = tmp_path / "warm.db"

    def engine() -> LiveEngine:
        e = LiveEngine(cfg, mode="paper", journal=Journal.open(db), source=f"replay:{source}",
                       funding=load_data(cfg, str(source)).funding, printer=lambda _line: None)
        e.open(0)
        return e

    first = engine()
    first.release_lease()  # the run is open, no input processed: no wallet has traded
    with Journal.open(db) as j:
        msg = flatten_wallet(j, "long", 0, wait_s=5)
    assert msg == "flattened long: it had not traded yet and now never will in this run"

    second = engine()  # resumes the run
    asyncio.run(second.run(ReplayFeed(source, speed=None, resume_after_seq=second.resume_after)))
    with Journal.open(db, readonly=True) as j:
        (run,) = j.runs()
        assert j.orders(run.run_id, "long") == [] and j.fills(run.run_id, "long") == []
        status = {s.wallet: s for s in j.wallet_status(run.run_id)}
        assert (status["long"].phase, status["long"].position) == ("STOPPED", 0.0)
        assert len(j.fills(run.run_id, "hedge")) > 10  # the other wallet traded all along
        (req,) = j.requests(run.run_id)
        assert req.status == "done"
