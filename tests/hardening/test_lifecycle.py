"""Lifecycle (issue 15, item 6): an interrupted run exits non-zero and says it is resumable;
`flatten` on a finished run refuses unless told, naming how old its last price is."""

from __future__ import annotations

import signal
import time

from loguru import logger
from typer.testing import CliRunner

from hedgekit.cli import app
from hedgekit.store.journal import Journal, JournalError
from tests.engine.test_live import _run_cli, busy_config, csv_lines, slice_csv


def _wait_for_lease(db, proc) -> None:
    """Until the engine runs its loop (a condition, not a duration: it then waits on stdin)."""
    while True:
        assert proc.poll() is None, proc.tail()
        try:
            with Journal.open(db, readonly=True) as j:
                runs = j.runs()
                # a checkpoint is written from inside the engine's loop, whose signal handlers
                # are in place by then (before it, SIGTERM would find the default action)
                if runs and j.lease(runs[-1].run_id) is not None and j.load_checkpoint(runs[-1].run_id, "hedge"):
                    return
        except JournalError:
            pass  # not created yet
        time.sleep(0.05)


def test_sigterm_exits_143_and_the_same_command_resumes_the_run(tmp_path):
    db = tmp_path / "j.db"
    lines = csv_lines(slice_csv(tmp_path, 0.5))
    args = ["run", str(busy_config(tmp_path)), "--mode", "paper", "--feed", "stdin", "--db", str(db)]
    engine = _run_cli(args)
    engine.send(lines[: len(lines) // 2])
    _wait_for_lease(db, engine)
    engine.send_signal(signal.SIGTERM)
    assert engine.wait(timeout=60) == 143, engine.tail()
    assert "interrupted by signal 15: it is resumable" in engine.tail()

    again = _run_cli(args)
    again.send(lines)
    again.close()
    assert again.wait(timeout=120) == 0, again.tail()
    with Journal.open(db, readonly=True) as j:
        (run,) = j.runs()  # the same run, resumed and finished
        assert run.status == "finished"


def test_flatten_of_a_finished_run_is_refused_unless_asked(tmp_path):
    db = tmp_path / "j.db"
    data = slice_csv(tmp_path, 0.5)
    runner = CliRunner()
    try:
        res = runner.invoke(app, ["--log-dir", str(tmp_path / "logs"), "run", str(busy_config(tmp_path)),
                                  "--mode", "paper", "--feed", f"replay:{data}", "--db", str(db)])
        assert res.exit_code == 0, res.output
        res = runner.invoke(app, ["flatten", "long", "--db", str(db), "--yes"])
        assert res.exit_code == 2
        assert "is finished" in res.output and "hours old" in res.output and "--finished" in res.output
        with Journal.open(db, readonly=True) as j:
            assert not [f for f in j.fills(1, "long") if f.kind == "flatten"]  # nothing booked
        res = runner.invoke(app, ["flatten", "long", "--db", str(db), "--yes", "--finished"])
        assert res.exit_code == 0, res.output
        assert "flattened long" in res.output
    finally:
        logger.remove()
