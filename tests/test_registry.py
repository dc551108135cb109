"""A strategy registered from outside src/ (tests/plugins/toy.py) runs through config
validation, the backtest, a PAPER replay with checkpoints, and the report: nothing under
src/ names it."""

from __future__ import annotations

import pytest

from hedgekit.config import ConfigError, parse_config
from hedgekit.engine.session import run_backtest
from hedgekit.registry import register, unregister
from hedgekit.report.html import build_report
from hedgekit.report.results import export_run
from hedgekit.store.journal import Journal
from tests.engine.test_live import paper, slice_csv
from tests.plugins.toy import ENTRY, ToyBuyer

TOY = {"wallets": [{"strategy": "toy_buyer", "name": "toy", "allocation": 5000, "leverage": 2,
                    "fraction": 0.5, "stop_pct": 0.002}],
       "instrument": {"symbol": "BTCUSDT", "tick_size": 0.1, "lot_size": 0.001, "min_notional": 100},
       "venue": {"taker_fee": 0.0005, "maker_fee": 0.0002, "funding": {"rate": 0.0001}}}


@pytest.fixture(autouse=True)
def toy_registered():
    register(ENTRY)
    yield
    unregister(ENTRY.name)


def test_the_config_knows_a_registered_strategy_and_names_its_fields():
    cfg = parse_config(TOY)
    assert type(cfg.wallets[0]).__name__ == "ToyConfig" and cfg.wallets[0].stop_pct == 0.002
    with pytest.raises(ConfigError, match=r"wallets\[0\].*stop_pctt"):
        parse_config({**TOY, "wallets": [{**TOY["wallets"][0], "stop_pctt": 0.1}]})
    with pytest.raises(ConfigError, match="toy_buyer"):
        parse_config({**TOY, "wallets": [{"strategy": "toy_seller", "allocation": 1}]})


def test_backtest_paper_replay_and_report_of_a_registered_strategy(tmp_path):
    cfg = parse_config(TOY)
    data = slice_csv(tmp_path, 1)
    result = run_backtest(cfg, data=str(data))
    fills = result.fills
    kinds = list(fills["kind"])
    assert kinds[0] == "market_buy" and kinds.count("stop_loss") >= 3
    # every stop that sold is followed by a market buy, and the position is protected at the end
    assert all(kinds[i + 1] == "market_buy" for i, k in enumerate(kinds[:-1]) if k == "stop_loss")
    out = result.write(tmp_path / "bt")

    journal = Journal.open(tmp_path / "j.db")
    engine = paper(cfg, journal, data)
    strategy = engine.wallets[0].runner.strategy
    assert isinstance(strategy, ToyBuyer) and strategy.buys == kinds.count("market_buy")
    live = export_run(journal, engine.run_id, cfg, tmp_path / "paper")
    for name in ("fills.csv", "orders.csv"):
        assert (live / name).read_bytes() == (out / name).read_bytes()
    # restarted from its JSON checkpoint, the finished run stays as it was
    again = paper(cfg, journal, data)
    assert again.run_id == engine.run_id and again.wallets[0].runner.strategy.buys == strategy.buys
    journal.close()

    html = build_report(out).read_text()  # `hedgekit report FOLDER`
    assert "toy_buyer" in html and "Where the money went" in html


def test_once_unregistered_the_strategy_is_unknown_again():
    unregister(ENTRY.name)
    with pytest.raises(ConfigError, match="toy_buyer"):
        parse_config(TOY)
    register(ENTRY)  # for the fixture's teardown
