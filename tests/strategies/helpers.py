"""Shared test helpers for the unit strategies."""

from __future__ import annotations

from hedgekit.core import Instrument, OrderKind, UnitMode, UnitSpec

# Exact decimal sizes for the worked examples: 4 decimals of lot, no minimum notional.
INSTRUMENT = Instrument("TESTUSD", tick_size=0.1, lot_size=0.0001, min_notional=0.0)
UNIT_100 = UnitSpec(UnitMode.FIXED, 100.0)


def units(strategy, kind: OrderKind) -> list[int]:
    return sorted(o.unit for o in strategy.working.values() if o.kind is kind)


def sizes(strategy, kind: OrderKind) -> dict[int, float]:
    return {o.unit: o.qty for o in strategy.working.values() if o.kind is kind}


def total(strategy, kind: OrderKind) -> float:
    return sum(o.qty for o in strategy.working.values() if o.kind is kind)


# -- SPEC §4a invariants, checked after every event a strategy handles -------------------------
def slot_count(strategy, *kinds: OrderKind) -> int:
    return len(strategy.slots(*kinds))


def assert_protected(strategy) -> None:
    """The strategy's position is covered by its working protective stops (or a close in
    flight): never a position without its stop. The long wallet's sells equal it exactly."""
    from hedgekit.core.orders import PROTECTIVE_KINDS, Side

    s = strategy
    q = s.position.qty
    lot = s.instrument.lot_size
    if abs(q) < lot / 2:
        return
    closing = Side.SELL if q > 0 else Side.BUY
    kinds = PROTECTIVE_KINDS | {OrderKind.FLATTEN, OrderKind.PROTECTIVE_CLOSE}
    cover = sum(o.qty for o in s.working.values() if o.kind in kinds and o.side is closing)
    assert cover >= abs(q) - lot / 2, f"{s.wallet}: position {q:g} protected by only {cover:g} ({s.phase})"
    if s.name == "long_wallet" and not s.stopped:
        assert abs(cover - q) < lot / 2, f"{s.wallet}: sells {cover:g} != position {q:g}"


def assert_four_slots(strategy) -> None:
    """Each running unit wallet keeps its four window slots (working or deferred)."""
    from hedgekit.core.strategy import Phase

    s = strategy
    if s.stopped or s.phase in (Phase.STARTING, Phase.RESET):
        return
    if s.name == "long_wallet":
        n = slot_count(s, OrderKind.STOP_LOSS, OrderKind.STOP_ENTRY_BUY)
    else:
        n = slot_count(s, OrderKind.STOP_ENTRY_SHORT, OrderKind.STOP_LOSS_COVER)
        assert len(s.orders(OrderKind.STOP_LOSS_FULL)) <= 1
    assert n == 4, f"{s.wallet}: {n} window slots in {s.phase}"


class EveryEvent:
    """Checks both invariants on ``strategy`` before each event it is handed (that is, after
    the previous event and every command it returned were executed) and on demand."""

    def __init__(self, strategy, venue=None) -> None:
        self.strategy = strategy
        self.venue = venue  # when given: nothing to check once the venue liquidated the account
        self.events = 0
        inner = strategy.on_event

        def on_event(event):
            self.check()
            self.events += 1
            return inner(event)

        strategy.on_event = on_event

    def check(self) -> None:
        v = self.venue
        if v is not None and (
            v.liquidated or abs(v.position.qty - self.strategy.position.qty) > v.instrument.lot_size / 2
        ):
            # Reports still on the way (a gap fires several stops before the first report is
            # handled): the strategy's book is checked once it has heard them all.
            return
        assert_protected(self.strategy)
        assert_four_slots(self.strategy)
