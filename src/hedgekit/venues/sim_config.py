"""The simulated account's settings (``SimConfig``) and the faults it can inject into what it
reports (``FaultPlan``)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Literal

from hedgekit.core.errors import ParameterError

__all__ = ["FaultPlan", "SimConfig"]


@dataclass(frozen=True)
class SimConfig:
    """One simulated account. Rates are fractions (0.0005 = 5 bp)."""

    initial_cash: float  # quote currency (USD) margin balance
    leverage: float = 1.0  # max leverage allowed for this account
    margin_mode: Literal["cross", "isolated"] = "cross"
    maintenance_margin_rate: float = 0.005
    slippage: float = 0.0  # fraction added against the taker on market orders
    limit_fill: Literal["touch", "through"] = "touch"
    trigger_order: Literal["random", "fifo", "reverse"] = "random"  # ties at one price
    seed: int = 0
    maker_fee: float | None = None  # None -> the instrument's
    taker_fee: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.initial_cash) and self.initial_cash >= 0):
            raise ParameterError("initial_cash", self.initial_cash, "must be a number >= 0")
        if not (math.isfinite(self.leverage) and self.leverage > 0):
            raise ParameterError("leverage", self.leverage, "must be a positive number (1 = no leverage)")
        if not 0 <= self.maintenance_margin_rate < 1 / self.leverage:
            raise ParameterError(
                "maintenance_margin_rate", self.maintenance_margin_rate,
                f"must be >= 0 and below the initial margin rate 1/leverage = {1 / self.leverage:g}",
            )
        if not 0 <= self.slippage < 0.1:
            raise ParameterError("slippage", self.slippage, "must be a fraction in [0, 0.1) (0.0005 = 5 bp)")
        _check_choice("margin_mode", self.margin_mode, ("cross", "isolated"))
        _check_choice("limit_fill", self.limit_fill, ("touch", "through"))
        _check_choice("trigger_order", self.trigger_order, ("random", "fifo", "reverse"))
        for name in ("maker_fee", "taker_fee"):
            fee = getattr(self, name)
            if fee is not None and not -0.01 <= fee <= 0.01:
                raise ParameterError(name, fee, "must be a rate between -0.01 and 0.01 (0.0005 = 5 bp)")


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ParameterError(name, value, f"must be one of {', '.join(allowed)}")


def _ids(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):  # a bare string is one id, not a set of characters
        return frozenset((value,))
    return frozenset(value)


@dataclass(frozen=True)
class FaultPlan:
    """Faults injected into what the venue reports (for reliability tests).

    Each fault is triggered for the listed client ids and/or with a probability drawn from a
    generator seeded with ``seed`` (draws are made only for faults with a probability > 0, so
    adding a per-id fault never changes the random draws of another plan).

    * ``reject``: the next submit of that id is rejected (a retry with the same id succeeds).
    * ``partial``: the order's first fill takes ``partial_fraction`` of it (rounded down to the
      lot); the rest fills at the start of the next ``move_to``.
    * ``duplicate``: each fill report of that order is returned twice (same ``fill_id``).
    * ``delay``: each fill report of that order is held back and returned ``delay_calls``
      calls later (``submit``, ``cancel`` and ``move_to`` count as calls).
    * ``reorder``: the events of one call are returned in reverse order when one of them
      concerns a listed id (or with the probability).

    A clamped reduce-only fill is never made partial (its rest is already expired).
    """

    reject: AbstractSet[str] = frozenset()
    reject_prob: float = 0.0
    partial: AbstractSet[str] = frozenset()
    partial_prob: float = 0.0
    partial_fraction: float = 0.5
    duplicate: AbstractSet[str] = frozenset()
    duplicate_prob: float = 0.0
    delay: AbstractSet[str] = frozenset()
    delay_prob: float = 0.0
    delay_calls: int = 1
    reorder: AbstractSet[str] = frozenset()
    reorder_prob: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("reject", "partial", "duplicate", "delay", "reorder"):
            object.__setattr__(self, name, _ids(getattr(self, name)))
        for name in ("reject_prob", "partial_prob", "duplicate_prob", "delay_prob", "reorder_prob"):
            p = getattr(self, name)
            if not 0 <= p <= 1:
                raise ParameterError(name, p, "must be a probability in [0, 1]")
        if not 0 < self.partial_fraction < 1:
            raise ParameterError("partial_fraction", self.partial_fraction, "must be in (0, 1)")
        if not (isinstance(self.delay_calls, int) and self.delay_calls >= 1):
            raise ParameterError("delay_calls", self.delay_calls, "must be an integer >= 1")
