"""The journal on PostgreSQL: URLs and driver, schema types, refusals that touch nothing,
read-only sessions, per-wallet write serialization. (The behaviour shared with SQLite runs on
both backends in test_journal.py.) Needs the session's throwaway cluster (tests/conftest.py),
except the missing-driver test."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hedgekit.cli import app
from hedgekit.store import Journal, JournalError
from hedgekit.store.journal import SCHEMA_VERSION
from tests._postgres import PgCluster
from tests.store.test_journal import SCRIPT, SimWallet, W, new_run, run_script


def pg_state(cluster: PgCluster, database: str) -> tuple[list[tuple], dict[str, list[tuple]]]:
    """Every relation of the public schema, and the rows of its tables and views."""
    rels = cluster.execute(
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' ORDER BY 1", database)
    rows = {name: cluster.execute(f'SELECT * FROM "{name}" ORDER BY 1', database)
            for name, kind in rels if kind in ("r", "v")}
    return rels, rows


def test_a_plain_postgresql_url_creates_a_journal_with_psycopg_3(pg_cluster: PgCluster) -> None:
    name = pg_cluster.new_database()
    plain = pg_cluster.url(name, driver="postgresql")

    with pytest.raises(JournalError, match=r"postgresql\+psycopg://hedgekit@.*no hedgekit journal there"):
        Journal.open(plain, create=False)
    assert pg_state(pg_cluster, name) == ([], {})  # create=False created nothing

    with Journal.open(plain) as j:
        assert j._engine.dialect.driver == "psycopg"
        assert j.schema_version == SCHEMA_VERSION
        run_id = new_run(j)
        run_script(j, run_id, SimWallet(), range(len(SCRIPT)))
    with Journal.open(pg_cluster.url(name, driver="postgres"), readonly=True) as j:  # Heroku style
        assert len(j.fills(run_id, W)) == 3

    assert dict(pg_cluster.execute("SELECT key, value FROM hedgekit_meta", name)) == {
        "application": "hedgekit", "schema_version": str(SCHEMA_VERSION),
    }
    types = dict(pg_cluster.execute(
        "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public'", name))
    assert types["checkpoints.snapshot"] == "bytea"
    assert types["fills.ts"] == types["runs.started_ts"] == "bigint"  # ms since the epoch, UTC
    assert types["fills.price"] == "double precision"
    assert types["orders.reduce_only"] == types["wallet_status.paused"] == "boolean"


def test_a_missing_driver_is_one_clear_error(tmp_path: Path) -> None:
    url = "postgresql://bot:secret@127.0.0.1:1/hk"  # never reached
    saved = sys.modules.get("psycopg")
    sys.modules["psycopg"] = None  # type: ignore[assignment]  # import psycopg -> ImportError
    try:
        with pytest.raises(JournalError) as err:
            Journal.open(url)
        res = CliRunner().invoke(app, ["--log-dir", str(tmp_path), "status", "--db", url])
    finally:
        if saved is None:
            del sys.modules["psycopg"]
        else:
            sys.modules["psycopg"] = saved
    msg = str(err.value)
    assert msg.startswith("journal postgresql+psycopg://bot:***@127.0.0.1:1/hk: the database driver "
                          "is not installed")
    assert "pip install 'hedgekit[postgres]'" in msg and "secret" not in msg
    assert res.exit_code == 2
    assert "the database driver is not installed" in res.output and "Traceback" not in res.output


def _foreign(c: PgCluster, db: str) -> None:
    c.execute("CREATE TABLE users (id serial PRIMARY KEY, name text)", db)
    c.execute("INSERT INTO users (name) VALUES ('ann'), ('bob')", db)
    c.execute("CREATE VIEW user_names AS SELECT name FROM users", db)


def _clash(c: PgCluster, db: str) -> None:
    c.execute("CREATE TABLE runs (id int PRIMARY KEY, what text)", db)
    c.execute("INSERT INTO runs VALUES (1, 'a marathon')", db)


def _other_meta(c: PgCluster, db: str) -> None:
    c.execute("CREATE TABLE hedgekit_meta (key text PRIMARY KEY, value text)", db)
    c.execute("INSERT INTO hedgekit_meta VALUES ('application', 'otherbot')", db)


def _newer(c: PgCluster, db: str) -> None:
    Journal.open(c.url(db)).close()
    c.execute(f"UPDATE hedgekit_meta SET value = '{SCHEMA_VERSION + 1}' WHERE key = 'schema_version'", db)


def _incomplete(c: PgCluster, db: str) -> None:
    Journal.open(c.url(db)).close()
    c.execute("DROP TABLE checkpoints", db)


@pytest.mark.parametrize(("make", "problem"), [
    (_foreign, "holds other tables (user_names, users) and no hedgekit_meta table"),
    (_clash, "has table(s) runs but no hedgekit_meta table"),
    (_other_meta, "names application 'otherbot'"),
    (_newer, f"schema version {SCHEMA_VERSION + 1} was written by a newer hedgekit"),
    (_incomplete, "incomplete journal, missing table(s) checkpoints"),
])
@pytest.mark.parametrize("readonly", [False, True])
def test_a_database_that_is_not_our_journal_is_refused_and_never_modified(
    pg_cluster: PgCluster, make, problem: str, readonly: bool,
) -> None:
    name = pg_cluster.new_database()
    make(pg_cluster, name)
    before = pg_state(pg_cluster, name)

    with pytest.raises(JournalError) as err:
        Journal.open(pg_cluster.url(name), readonly=readonly)

    assert str(err.value).startswith(f"journal {pg_cluster.url(name)}: ")
    assert problem in str(err.value)
    assert pg_state(pg_cluster, name) == before


def test_a_journal_can_live_in_its_own_schema_beside_other_tables(pg_cluster: PgCluster) -> None:
    # what the refusal above advises
    name = pg_cluster.new_database()
    _foreign(pg_cluster, name)
    before = pg_state(pg_cluster, name)
    pg_cluster.execute("CREATE SCHEMA bot", name)
    url = pg_cluster.url(name) + "?options=-csearch_path%3Dbot"

    with Journal.open(url) as j:
        run_id = new_run(j)
        run_script(j, run_id, SimWallet(), range(2))
    with Journal.open(url, readonly=True) as j:
        assert [s.phase for s in j.wallet_status()] == ["long"]

    assert pg_state(pg_cluster, name) == before
    assert pg_cluster.execute("SELECT count(*) FROM bot.fills", name) == [(1,)]


def test_a_readonly_journal_reads_in_read_only_sessions(pg_url: str) -> None:
    with Journal.open(pg_url) as j:
        run_id = new_run(j)
        run_script(j, run_id, SimWallet(), range(2))

    with Journal.open(pg_url, readonly=True) as ro:
        assert [s.phase for s in ro.wallet_status()] == ["long"]
        with pytest.raises(JournalError, match="opened read-only, cannot start a run"):
            ro.start_run(mode="paper", config_json="{}", source="x", started_ts=1)
        with ro._read() as conn:  # even SQL that bypasses the API cannot write
            assert conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on"


def test_writes_to_one_wallet_wait_for_each_other(pg_cluster: PgCluster, pg_url: str) -> None:
    # Another writer holds the wallet's row lock (as a commit_batch in flight does): a second
    # writer's batch waits for it instead of interleaving its reads and writes with it.
    import psycopg

    j = Journal.open(pg_url)
    run_id = new_run(j)
    wallet = SimWallet()
    run_script(j, run_id, wallet, range(1))
    batch = wallet.process(j, run_id, 1)  # intents written; the batch not yet
    database = pg_url.rsplit("/", 1)[1]
    other = psycopg.connect(host="127.0.0.1", port=pg_cluster.port, user="hedgekit", dbname=database)
    other.execute("SELECT 1 FROM wallets WHERE run_id = %s AND wallet = %s FOR NO KEY UPDATE", (run_id, W))
    done = threading.Event()
    errors: list[BaseException] = []

    def commit() -> None:
        try:
            j.commit_batch(run_id, W, **batch)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            done.set()

    t = threading.Thread(target=commit)
    t.start()
    try:
        assert not done.wait(0.3), "commit_batch did not wait for the wallet's row lock"
        assert j.fills(run_id, W) == []
    finally:
        other.rollback()
        other.close()
    assert done.wait(10)
    t.join()
    assert errors == []
    assert len(j.fills(run_id, W)) == 1
    j.close()


def test_the_url_password_is_never_shown(pg_url: str) -> None:
    with_password = pg_url.replace("hedgekit@", "hedgekit:s3cr3t@")  # trust auth ignores it
    with Journal.open(with_password) as j:
        assert "s3cr3t" not in repr(j) and "***" in j.location
