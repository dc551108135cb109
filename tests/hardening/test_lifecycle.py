"""Lifecycle (issue 15, item 6): an interrupted run exits non-zero and says it is resumable;
`flatten` on a finished run refuses unless told, naming how old its last price is."""

from __future__ import annotations

import os
import signal

from loguru import logger
from typer.testing import CliRunner

from hedgekit.cli import app
from hedgekit.engine.live import EngineHooks, LiveEngine
from hedgekit.store.journal import Journal
from tests.engine.test_live import busy_config, csv_lines, slice_csv


class _TermAt(EngineHooks):
    """SIGTERM to this very process after the n-th input: the engine's own handler takes it
    between two inputs, as it would from a shell (deterministic: counted in inputs)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def after_input(self, inputs: int) -> None:
        if inputs == self.n:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_exits_143_and_the_same_command_resumes_the_run(tmp_path, monkeypatch):
    db = tmp_path / "j.db"
    text = "".join(csv_lines(slice_csv(tmp_path, 0.5)))
    args = ["--log-dir", str(tmp_path / "logs"), "run", str(busy_config(tmp_path)), "--mode", "paper",
            "--feed", "stdin", "--db", str(db)]
    runner = CliRunner()
    try:
        monkeypatch.setattr(LiveEngine, "hooks", _TermAt(100))
        res = runner.invoke(app, args, input=text)
        assert res.exit_code == 143, res.output
        assert "interrupted by signal 15: it is resumable" in res.output
        with Journal.open(db, readonly=True) as j:
            (run,) = j.runs()
            assert run.ended_ts is None and j.load_checkpoint(run.run_id, "hedge")[0] == 99  # type: ignore[index]
        monkeypatch.undo()
        res = runner.invoke(app, args, input=text)  # the same stream again
        assert res.exit_code == 0, res.output
    finally:
        logger.remove()
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
