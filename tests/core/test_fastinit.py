"""fast_init gives a frozen slots dataclass a quicker __init__ without changing what it makes."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle

import pytest

from hedgekit.core.commands import Cancel, Place
from hedgekit.core.errors import HedgekitError
from hedgekit.core.events import (
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    Tick,
    Timer,
    UnitChanged,
)
from hedgekit.core.fastinit import fast_init
from hedgekit.core.orders import OrderKind, OrderSpec, OrderType, Side
from hedgekit.venues.sim import FillRecord, OrderLogRecord


@dataclasses.dataclass(frozen=True, slots=True)
class Plain:
    a: int
    b: str = "x"
    c: float | None = None


@fast_init
@dataclasses.dataclass(frozen=True, slots=True)
class Fast:
    a: int
    b: str = "x"
    c: float | None = None


@fast_init
@dataclasses.dataclass(frozen=True, slots=True)
class Checked:
    a: int

    def __post_init__(self) -> None:
        if self.a < 0:
            raise ValueError("a < 0")


def test_same_values_defaults_and_keywords_as_the_generated_init():
    for args, kwargs in [((1,), {}), ((1, "y"), {}), ((1,), {"c": 2.5}), ((), {"a": 3, "b": "z", "c": None})]:
        plain, fast = Plain(*args, **kwargs), Fast(*args, **kwargs)
        assert dataclasses.astuple(plain) == dataclasses.astuple(fast)
        assert repr(fast) == repr(plain).replace("Plain", "Fast")
    assert Fast(1, "y") == Fast(a=1, b="y") and hash(Fast(1)) == hash(Fast(1))
    assert dataclasses.replace(Fast(1), b="q") == Fast(1, "q")
    spec = OrderSpec("id", "w", OrderKind.STOP_LOSS, Side.SELL, OrderType.STOP, qty=0.5, price=9.5, unit=-2)
    assert pickle.loads(pickle.dumps(spec)) == spec == copy.deepcopy(spec)
    assert list(inspect.signature(Fast).parameters) == ["a", "b", "c"]
    with pytest.raises(TypeError):
        Fast()  # a is required
    with pytest.raises(TypeError):
        Fast(1, "y", 2.0, 3)


def test_the_class_stays_frozen_and_post_init_still_runs():
    f = Fast(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.a = 2  # type: ignore[misc]
    with pytest.raises(ValueError, match="a < 0"):
        Checked(-1)
    with pytest.raises(HedgekitError):
        OrderSpec("id", "w", OrderKind.STOP_LOSS, Side.SELL, OrderType.STOP, qty=0.0, price=1.0)


def test_only_frozen_slots_dataclasses_with_plain_fields_are_accepted():
    @dataclasses.dataclass(slots=True)
    class Mutable:
        a: int

    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Factory:
        a: list = dataclasses.field(default_factory=list)

    for cls in (Mutable, NoSlots, Factory):
        with pytest.raises(TypeError):
            fast_init(cls)


@pytest.mark.parametrize("cls", [Tick, UnitChanged, OrderFilled, OrderRejected, OrderCancelled, Timer,
                                 Place, Cancel, OrderSpec, FillRecord, OrderLogRecord])
def test_the_hot_records_use_it(cls):
    first = dataclasses.fields(cls)[0].name
    assert f"_set_{first}" in cls.__init__.__globals__  # the slot setters fast_init binds
