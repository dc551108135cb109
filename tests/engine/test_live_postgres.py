"""End to end on PostgreSQL: `hedgekit run --mode paper --db postgresql://...`, killed and
resumed, writes the same journal as the same run on SQLite; `hedgekit status --db URL` shows it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from loguru import logger
from typer.testing import CliRunner

from hedgekit.cli import app
from hedgekit.config import load_config
from hedgekit.store.journal import Journal
from tests._postgres import PgCluster

from .crash_child import child_env
from .test_live import REPO, busy_config, slice_csv


def _start(args: list[str], log: Path, kill: list[str]) -> subprocess.Popen:
    """The CLI in a child that SIGKILLs itself at ``kill`` (see tests/engine/crash_child.py)."""
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.engine.crash_child", *kill, "--", "--log-dir", str(log.parent / "logs"), *args],
            cwd=REPO, env=child_env(), stdout=subprocess.DEVNULL, stderr=err,
        )


def _journal(db: str) -> tuple:
    """Everything the run journaled, per wallet (exact values, not CSV renderings)."""
    with Journal.open(db, readonly=True) as j:
        (run,) = j.runs()
        wallets = [s.wallet for s in j.wallet_status(run.run_id)]
        return (
            (run.mode, run.config_json, run.source, run.ended_ts is not None, run.status),
            j.wallet_status(run.run_id),
            {w: j.fills(run.run_id, w) for w in wallets},
            {w: j.order_events(run.run_id, w) for w in wallets},
            {w: j.orders(run.run_id, w) for w in wallets},
            {w: j.phases(run.run_id, w) for w in wallets},
        )


def _cli(*args: str) -> str:
    """`hedgekit ARGS` in this process (the logger is reset afterwards); its output."""
    try:
        res = CliRunner().invoke(app, list(args))
    finally:
        logger.remove()  # the CLI pointed the logger at its own stderr and log folder
    assert res.exit_code == 0, res.output
    return res.output


def test_paper_run_on_postgresql_killed_and_resumed_equals_the_sqlite_run(
    tmp_path: Path, pg_cluster: PgCluster,
) -> None:
    cfg_path = busy_config(tmp_path)
    data = slice_csv(tmp_path, 0.5)
    url = pg_cluster.url(pg_cluster.new_database(), driver="postgresql")  # plain: psycopg 3
    sqlite_db = tmp_path / "ref.db"
    log = tmp_path / "runs.stderr.log"

    def args(db: str | Path, out: str) -> list[str]:
        return ["run", str(cfg_path), "--mode", "paper", "--feed", f"replay:{data}", "--speed", "max",
                "--db", str(db), "--out", str(tmp_path / out)]

    # a PostgreSQL run SIGKILLed after its 20th order intent; meanwhile the SQLite reference
    crash = _start(args(url, "pg"), log, kill=["--kill-after-intent", "20"])
    _cli("--log-dir", str(tmp_path / "logs"), *args(sqlite_db, "ref"))
    assert crash.wait(timeout=180) == -signal.SIGKILL, log.read_text()[-3000:]
    with Journal.open(url, readonly=True) as j:
        (run,) = j.runs()
        assert run.ended_ts is None and j.fills(run.run_id, "long")  # killed midway
    # the same command resumes the run from its PostgreSQL checkpoints and finishes it
    _cli("--log-dir", str(tmp_path / "logs"), *args(url, "pg"))

    pg, ref_journal = _journal(url), _journal(sqlite_db)
    assert sum(len(f) for f in ref_journal[2].values()) > 30, "the replay must trade for this to mean anything"
    assert pg == ref_journal
    assert pg[0][3:] == (True, "finished")
    for name in ("fills.csv", "orders.csv"):
        assert (tmp_path / "pg" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()

    shown = _cli("--log-dir", str(tmp_path / "logs"), "status", "--db", url)
    assert "run 1 (paper)" in shown
    statuses = pg[1]
    assert [s.wallet for s in statuses] == sorted(w.name for w in load_config(cfg_path).wallets)
    for s in statuses:
        row = next(line for line in shown.splitlines() if line.startswith(f"│ {s.wallet} "))
        assert s.strategy in row and s.phase in row and f"{s.position:.6g}" in row
