"""Pure domain: instruments, units, orders, events, commands. No I/O."""

from hedgekit.core.commands import Cancel, Command, Place, Replace, SetTimer, expand
from hedgekit.core.errors import HedgekitError, ParameterError
from hedgekit.core.events import (
    AtrUpdated,
    Event,
    FundingSettled,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    Tick,
    Timer,
    UnitChanged,
)
from hedgekit.core.instrument import ContractType, Instrument
from hedgekit.core.orders import (
    Order,
    OrderKind,
    OrderSpec,
    OrderStatus,
    OrderTrigger,
    OrderType,
    Side,
    make_client_id,
)
from hedgekit.core.position import Position
from hedgekit.core.unit_spec import UnitMode, UnitSpec
from hedgekit.core.units import UnitGrid, UnitTracker

__all__ = [
    "AtrUpdated", "Cancel", "Command", "ContractType", "Event", "FundingSettled", "HedgekitError", "Instrument", "Order",
    "OrderCancelled", "OrderFilled", "OrderKind", "OrderRejected", "OrderSpec", "OrderStatus",
    "OrderTrigger", "OrderType", "ParameterError", "Place", "Position", "Replace", "SetTimer",
    "Side", "Tick", "Timer", "UnitChanged", "UnitGrid", "UnitMode", "UnitSpec", "UnitTracker",
    "expand", "make_client_id",
]
