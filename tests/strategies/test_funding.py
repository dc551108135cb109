"""Funding reaches the unit wallets (``FundingSettled``): their equity is allocation +
realized PnL - fees + funding, as the venue books it, so the hedge wallet's RESET compounds
the right amount and its re-entry is not refused by the venue."""

from __future__ import annotations

from hedgekit.core import OrderKind, UnitMode, UnitSpec
from hedgekit.engine.driver import PathDriver
from hedgekit.engine.runner import WalletRunner
from hedgekit.engine.walker import MarketWalker
from hedgekit.strategies.hedge_wallet import HedgeWallet, HedgeWalletParams
from hedgekit.venues.sim import SimConfig, SimExchange

from .helpers import INSTRUMENT

# P0 = 1000, U = 200: the exit and the first short fire at 800, where F = 2000 USD is exactly
# 2.5 coins, and the cover back at 1000.
PARAMS = HedgeWalletParams(allocation=4000.0, leverage=2.0, unit=UnitSpec(UnitMode.FIXED, 200.0))


def short_cycle(rate: float | None) -> PathDriver:
    d = PathDriver(HedgeWallet("hedge", INSTRUMENT, PARAMS), cash=4000.0, leverage=2.0)
    d.start(1000.0)  # long 8 (N = 8000)
    d.to_unit(-1)  # full exit of 8 and the first short of 2.5 at 800
    assert d.venue.position.qty == -2.5
    if rate is not None:
        d.fund(rate)  # the short is paid -(-2.5) × 800 × rate
    d.to_unit(0)  # cover at 1000: flat -> RESET, market_buy_full with cash × leverage
    return d


def test_a_funding_payment_changes_the_reset_notional_by_funding_times_leverage():
    plain = short_cycle(None)
    funded = short_cycle(0.001)
    s = funded.strategy
    assert s.funding == funded.venue.funding_paid == 2.0  # 2.5 × 800 × 0.001, received
    # cash = 4000 - 8 × 200 (long exit) - 2.5 × 200 (short) + 2 = 1902; N = 1902 × 2
    assert plain.strategy.resets == s.resets == 1
    assert plain.strategy.notional == 3800.0
    assert s.notional == 3804.0
    assert s.notional - plain.strategy.notional == 2.0 * PARAMS.leverage
    assert s.position.qty == funded.venue.position.qty == 3.804  # bought with all of it


def test_with_funding_paid_the_first_market_buy_full_is_accepted():
    """Real fee rates; the long pays funding before the cycle. The venue's margin check counts
    the funding (cash) and not the fee, so all of cash × leverage fits; the old sizing, blind
    to the funding, asked for more than the cash covers and was refused."""
    venue = SimExchange(INSTRUMENT, SimConfig(
        initial_cash=4000.0, leverage=2.0, maker_fee=0.0002, taker_fee=0.0005, trigger_order="fifo",
    ))
    s = HedgeWallet("hedge", INSTRUMENT, PARAMS)
    r = MarketWalker(WalletRunner(s, venue), venue)
    r.start(0, 1000.0)
    r.apply_funding(0.001, 60_000)  # long 8 at 1000 pays 8 USD
    assert s.funding == venue.funding_paid == -8.0
    r.advance(800.0, 120_000)
    r.advance(1000.0, 180_000)
    assert s.resets == 1 and not s.warnings
    full = [e for e in venue.order_log if e.kind == OrderKind.MARKET_BUY_FULL]
    assert [e.event for e in full] == ["placed", "filled"]  # one order, accepted at once
    assert not [e for e in venue.order_log if e.event == "rejected"]
    fill = venue.fills[-1]
    cash_before = venue.cash + fill.fee
    assert s.position.qty == INSTRUMENT.qty_for_notional(cash_before * 2, 1000.0)
    # The same re-entry sized without the funding would not have fitted.
    blind_qty = INSTRUMENT.qty_for_notional((cash_before - s.funding) * 2, 1000.0)
    assert blind_qty * 1000.0 / 2 > cash_before + 1.0
