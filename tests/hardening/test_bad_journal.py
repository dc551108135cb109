"""Garbage in a journal's columns (an edited or corrupt journal: text where a number belongs,
an unknown order status or kind, a boolean that is neither) makes `hedgekit status` fail with
one clear error naming the run, the wallet, the row and the column, never a traceback.
(Issue 15, item 4.)"""

from __future__ import annotations

import sqlite3

import pytest
from typer.testing import CliRunner

from hedgekit.cli import app
from hedgekit.core.orders import Side
from hedgekit.core.records import OrderLogRecord
from hedgekit.store.journal import Journal, JournalError
from tests.store.test_journal import SCRIPT, SimWallet, new_run, run_script


@pytest.fixture(scope="module")
def journal_file(tmp_path_factory) -> bytes:
    """A small journal (one wallet ``w1``, run 1, one working order), as bytes."""
    db = tmp_path_factory.mktemp("bad") / "j.db"
    j = Journal.open(db)
    run_script(j, new_run(j), SimWallet(), range(len(SCRIPT)))
    j.close()
    return db.read_bytes()


WORKING = "hk-w1-0-x-gs-5"  # the order still open at the end of the script


@pytest.mark.parametrize(("sql", "message"), [
    ("UPDATE wallet_status SET position = 'abc'",
     "the status of wallet 'w1' in run 1: column wallet_status.position holds 'abc', not a number"),
    ("UPDATE wallet_status SET last_price_ts = 1.5",
     "the status of wallet 'w1' in run 1: column wallet_status.last_price_ts holds 1.5, not an integer"),
    ("UPDATE wallet_status SET paused = 'maybe'",
     "column wallet_status.paused holds 'maybe', not true/false (0 or 1)"),
    (f"UPDATE orders SET status = 'half-open' WHERE client_id = '{WORKING}'",
     f"order {WORKING} of wallet 'w1' in run 1: column orders.status holds 'half-open', not one of new, open"),
    ("UPDATE orders SET status = 'zombie' WHERE client_id = 'hk-w1-0-0-mb-1'",  # a closed order
     "order hk-w1-0-0-mb-1 of wallet 'w1' in run 1: column orders.status holds 'zombie'"),
    (f"UPDATE orders SET kind = 'moonshot' WHERE client_id = '{WORKING}'",
     f"order {WORKING} of wallet 'w1' in run 1: column orders.kind holds 'moonshot', not one of market_buy"),
    (f"UPDATE orders SET qty = x'00ff' WHERE client_id = '{WORKING}'",
     "column orders.qty holds b'\\x00\\xff', not a number"),
    ("UPDATE wallet_status SET position = '" + "9" * 5000 + "x'",  # shown cut short
     "column wallet_status.position holds '9999"),
])
def test_status_names_the_run_wallet_row_and_column_of_garbage(tmp_path, journal_file, sql, message):
    db = tmp_path / "j.db"
    db.write_bytes(journal_file)
    with sqlite3.connect(db) as con:
        con.execute(sql)
    con.close()

    res = CliRunner().invoke(app, ["status", "--db", str(db)])

    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split()), res.output
    assert "edited or is corrupt" in " ".join(res.output.split())
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert len(res.output) < 2000  # a long value is cut, not printed whole


def test_a_stored_status_the_order_cannot_leave_is_refused_when_a_batch_moves_it(tmp_path, journal_file):
    db = tmp_path / "j.db"
    db.write_bytes(journal_file)
    with sqlite3.connect(db) as con:
        con.execute(f"UPDATE orders SET status = 'gone' WHERE client_id = '{WORKING}'")
    con.close()
    j = Journal.open(db)
    cancel = OrderLogRecord(5_000, WORKING, "cancelled", "grid_sell", Side.SELL, 0.1, 120.0, None)
    with pytest.raises(JournalError, match=f"order {WORKING} of wallet 'w1' in run 1: column orders.status "
                                           "holds 'gone', not an order status"):
        j.commit_batch(1, "w1", cursor=4, ts=5_000, order_events=[cancel], fills=[], fill_phases={},
                       phases=[], status=SimWallet().status(1, 5_000, 94.0), snapshot=None)
    j.close()
