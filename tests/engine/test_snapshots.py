"""Strategy and wallet state as versioned JSON: a restored wallet continues exactly like the
one that never stopped; other versions, pickles and foreign classes are refused.

Price paths here are SYNTHETIC (seeded random walks), not market data."""

from __future__ import annotations

import json
import random

import pytest

from hedgekit.core.orders import diff_orders
from hedgekit.core.snapshot import FORMAT_VERSION, SnapshotError, decode, encode
from hedgekit.engine.driver import PathDriver
from hedgekit.engine.live import Snapshot, dump_snapshot, load_snapshot
from hedgekit.engine.walker import MarketWalker
from hedgekit.strategies.grid_hedge import GridHedge, GridHedgeParams
from hedgekit.strategies.hedge_wallet import HedgeWallet, HedgeWalletParams
from hedgekit.strategies.long_wallet import LongWallet, LongWalletParams
from tests.strategies.helpers import INSTRUMENT, UNIT_100


def _driver(kind: str) -> PathDriver:
    if kind == "long":
        s = LongWallet("long", INSTRUMENT, LongWalletParams(allocation=4000.0, leverage=2.0, unit=UNIT_100))
    elif kind == "hedge":
        s = HedgeWallet("hedge", INSTRUMENT, HedgeWalletParams(allocation=4000.0, leverage=2.0, unit=UNIT_100))
    else:
        s = GridHedge(GridHedgeParams.of(symbol=INSTRUMENT.symbol, spot_quantity=0.1, volatility=0.02,
                                         rebalance_interval_seconds=600), INSTRUMENT)
    return PathDriver(s, cash=8000.0, leverage=2.0, trigger_order="random", seed=3, taker_fee=0.0005)


def _walk(seed: int, n: int, start: float = 10_000.0) -> list[float]:
    rng = random.Random(seed)
    prices, p = [], start
    for _ in range(n):
        p = max(100.0, p + rng.choice([-1, 1]) * rng.uniform(20, 180))
        prices.append(round(p, 2))
    return prices


def _restored(d: PathDriver) -> PathDriver:
    """A copy of ``d`` through the live engine's checkpoint bytes."""
    blob = dump_snapshot(Snapshot(d.runner, 0, d.ts))
    json.loads(blob)  # plain JSON: no NaN/Infinity literals, nothing but data
    snap = load_snapshot(blob, type(d.strategy))
    copy = object.__new__(PathDriver)
    copy.runner, copy.ts = snap.runner, snap.last_ts
    copy.strategy, copy.venue = snap.runner.strategy, snap.runner.venue
    copy.walker = MarketWalker.of(snap.runner)  # not state: rebuilt around the restored runner
    return copy


@pytest.mark.parametrize("kind", ["long", "hedge", "grid"])
def test_a_restored_wallet_trades_exactly_like_the_one_that_never_stopped(kind):
    path = _walk(seed={"long": 1, "hedge": 2, "grid": 3}[kind], n=600)
    d = _driver(kind)
    d.start(10_000.0)
    for p in path[:300]:
        d.goto(p, gap=True)
    assert len(d.venue.fills) > 5, "the wallet must have traded before the snapshot"
    copy = _restored(d)
    assert copy.venue is not d.venue and copy.strategy is not d.strategy
    # shared objects stay shared: the runner's venue is the restored venue
    assert copy.runner.venue is copy.venue
    for p in path[300:]:
        d.goto(p, gap=True)
        copy.goto(p, gap=True)
    assert len(d.venue.fills) > len(copy.venue.fills) - 1 > 10
    assert copy.venue.fills == d.venue.fills
    assert copy.venue.order_log == d.venue.order_log
    assert (copy.venue.cash, copy.venue.position.qty) == (d.venue.cash, d.venue.position.qty)
    assert copy.strategy.snapshot() == d.strategy.snapshot()


def test_strategy_snapshot_restore_and_desired_orders():
    d = _driver("hedge")
    d.start(10_000.0)
    for p in _walk(5, 200):
        d.goto(p, gap=True)
    data = d.strategy.snapshot()
    assert (data["format"], data["strategy"], data["version"]) == (FORMAT_VERSION, "hedge_wallet", 1)
    back = HedgeWallet.restore(json.loads(json.dumps(data)))
    assert back.snapshot() == data and back.phase == d.strategy.phase
    # what recovery will diff against a venue: in sync now, and a lost order shows as missing
    lot = INSTRUMENT.lot_size
    desired = back.desired_orders()
    assert len(desired) >= 4
    assert diff_orders(desired, d.venue.open_orders(), lot).in_sync
    open_now = d.venue.open_orders()
    diff = diff_orders(desired, open_now[1:], lot)
    assert [s.client_id for s in diff.missing] == [open_now[0].client_id]
    assert not diff.unexpected and not diff.different


def test_other_versions_and_other_strategies_are_refused_naming_both():
    d = _driver("long")
    d.start(10_000.0)
    data = d.strategy.snapshot()
    with pytest.raises(SnapshotError, match="long_wallet state version 7 .* writes version 1"):
        LongWallet.restore(data | {"version": 7})
    with pytest.raises(SnapshotError, match=f"snapshot format version 0 .* writes version {FORMAT_VERSION}"):
        LongWallet.restore(data | {"format": 0})
    with pytest.raises(SnapshotError, match="'long_wallet' strategy, not 'hedge_wallet'"):
        HedgeWallet.restore(data)


def test_an_old_pickled_checkpoint_is_refused_with_a_clear_message():
    import pickle

    blob = pickle.dumps({"runner": None})
    with pytest.raises(SnapshotError, match="pickle written by an earlier hedgekit"):
        load_snapshot(blob, LongWallet)
    with pytest.raises(SnapshotError, match="not valid JSON"):
        load_snapshot(b"{not json", LongWallet)


@pytest.mark.parametrize("tag", [
    {"$obj": "os:system", "$id": 0, "a": {}},
    {"$obj": "subprocess:Popen", "$id": 0, "a": {}},
    {"$obj": "hedgekit.cli:app", "$id": 0, "a": {}},  # an object, not a class
    {"$obj": "hedgekit.core.errors:HedgekitError", "$id": 0, "a": {}},
    {"$enum": "enum:Enum", "v": 1},
    {"$ref": 5},
])
def test_data_from_a_hostile_database_never_names_code(tag):
    with pytest.raises(SnapshotError):
        decode(tag)


def test_things_that_are_not_state_cannot_be_written():
    with pytest.raises(SnapshotError, match=r"hook.*not hedgekit state"):
        encode({"hook": print})
    nan_inf = decode(json.loads(json.dumps(encode([float("nan"), float("-inf"), 0.1 + 0.2]))))
    assert nan_inf[0] != nan_inf[0] and nan_inf[1] == float("-inf") and nan_inf[2] == 0.1 + 0.2
