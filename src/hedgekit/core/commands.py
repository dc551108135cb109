"""Commands a strategy returns. Engines execute them in the order given (place before cancel)."""

from __future__ import annotations

from dataclasses import dataclass

from hedgekit.core.fastinit import fast_init
from hedgekit.core.orders import OrderSpec


@fast_init
@dataclass(frozen=True, slots=True)
class Place:
    order: OrderSpec


@fast_init
@dataclass(frozen=True, slots=True)
class Cancel:
    client_id: str


@dataclass(frozen=True, slots=True)
class Replace:
    """Move an order: the new one is placed before the old one is cancelled."""

    old_client_id: str
    order: OrderSpec


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Ask the engine for a ``Timer`` event at ``ts`` (data time, ms)."""

    name: str
    ts: int


Command = Place | Cancel | Replace | SetTimer


def expand(commands: list[Command]) -> list[Place | Cancel | SetTimer]:
    """Replace -> Place then Cancel, so venues only handle the primitive commands."""
    out: list[Place | Cancel | SetTimer] = []
    for cmd in commands:
        if isinstance(cmd, Replace):
            out.append(Place(cmd.order))
            out.append(Cancel(cmd.old_client_id))
        else:
            out.append(cmd)
    return out
