"""Alerts from a REAL run (issue 12 item 7): fills and reconciliation diffs reach the
configured apprise URL (a local receiver), and the URL's token is in no log line."""

from __future__ import annotations

import asyncio

from loguru import logger

from hedgekit.store.journal import Journal
from tests.engine.test_real import busy_config, price_points, real_engine, stub_feed, stubs  # noqa: F401 - fixture
from tests.test_alerts import FAKE_TOKEN, Receiver, receiver_fixture  # noqa: F401 - fixture


def test_a_real_run_alerts_fills_and_reconciliation_without_showing_the_token(tmp_path, stubs, receiver):  # noqa: F811
    cfg = busy_config(tmp_path).model_copy(update={"alerts": [receiver.url(FAKE_TOKEN)]})
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG")
    try:
        journal = Journal.open(tmp_path / "real.db")
        engine = real_engine(cfg, journal)
        asyncio.run(engine.run(stub_feed(price_points(30), stubs, engine.resume_after)))  # closes its alerts
        stubs["long"].add_order("hk-long-9-m7-sl-99", "SELL", 0.01, trigger=round(stubs["long"].price - 2000, 1),
                                reduce_only=True)  # fmt: skip
        again = real_engine(cfg, journal)  # reconciles on attach: the orphan is cancelled
        again.alerts.close()
        again.release_lease()
    finally:
        logger.remove(sink)
    sent = [line for r in receiver.received for line in r["message"].splitlines()]
    assert all(r["path"] == f"/{FAKE_TOKEN}" for r in receiver.received)
    fills = [line for line in sent if line.startswith("FILL ")]
    assert fills and any(line.startswith("FILL long: market_buy buy") for line in fills)
    assert any(line.startswith("RECONCILED long:") and "hk-long-9-m7-sl-99" in line for line in sent), sent
    assert not [line for line in lines if FAKE_TOKEN in line]
