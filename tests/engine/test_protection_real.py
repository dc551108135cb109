"""SPEC §4a on the default run (`make run`: the dual-wallet example on the bundled real BTC
month): before every event each wallet's position is covered by its protective stops and
each unit wallet has its four window slots; nothing is skipped or stranded."""

from __future__ import annotations

import pytest

from hedgekit.engine import session
from hedgekit.venues.sim import SimExchange
from tests.strategies.helpers import EveryEvent

pytestmark = pytest.mark.slow


def test_the_bundled_month_keeps_every_position_protected_and_four_slots(monkeypatch):
    from hedgekit.cli import DEFAULT_EXAMPLE, example_path
    from hedgekit.config import load_config

    checkers: list[EveryEvent] = []
    build = session.build_strategy

    def checked_strategy(*args, **kwargs):
        strategy = build(*args, **kwargs)
        checkers.append(EveryEvent(strategy))
        return strategy

    class Venue(SimExchange):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            checkers[-1].venue = self  # built right after its strategy

    monkeypatch.setattr(session, "build_strategy", checked_strategy)
    monkeypatch.setattr(session, "SimExchange", Venue)
    cfg = load_config(example_path(DEFAULT_EXAMPLE))
    result = session.run_backtest(cfg, mode="reference")  # every bar walked: every event seen

    assert [c.strategy.name for c in checkers] == ["long_wallet", "hedge_wallet"]
    for c in checkers:
        c.check()
        assert c.events > 300  # the checks ran all month (376 and 400-odd events)
        assert not c.strategy.stopped
    warnings = [w for c in checkers for w in c.strategy.warnings]
    run_warnings = [msg for w in result.engine.wallets for _, msg in w.runner.log.warnings]
    for text in warnings + run_warnings:
        assert "skipped" not in text and "deferred" not in text, text
