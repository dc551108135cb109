"""Persistence: the run journal (orders, fills, phases, wallet status, checkpoints)."""

from hedgekit.store.journal import (
    DEFAULT_PATH,
    SCHEMA_VERSION,
    FillRow,
    Journal,
    JournalError,
    Lease,
    LeaseLost,
    OrderEventRow,
    OrderRow,
    RequestOutcome,
    RequestRow,
    RunRow,
    WalletStatus,
)

__all__ = [
    "DEFAULT_PATH", "SCHEMA_VERSION", "FillRow", "Journal", "JournalError", "Lease", "LeaseLost",
    "OrderEventRow", "OrderRow", "RequestOutcome", "RequestRow", "RunRow", "WalletStatus",
]
