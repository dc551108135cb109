"""The run's lease: one live process per run (see ``engine.live``). A holder renews its
heartbeat every quarter of the timeout; a lease whose heartbeat is older than the timeout, or
whose holder ran on this machine and whose pid is gone, may be taken over."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from hedgekit.core.errors import HedgekitError
from hedgekit.store.journal import Lease

# The run's lease: a heartbeat older than this is stale (the holder is presumed dead) and the
# lease may be taken over. The holder renews it every quarter of it. HEDGEKIT_LEASE_TIMEOUT
# (seconds) overrides it; every process on a journal must use the same value.
LEASE_TIMEOUT_S = 10.0
LEASE_TIMEOUT_ENV = "HEDGEKIT_LEASE_TIMEOUT"
# How often the engine looks for requests (one indexed SELECT), also while the feed is silent.
REQUEST_POLL_S = 0.5


class RunBusy(HedgekitError):
    """Another live process holds the run's lease."""

    def __init__(self, message: str, lease: Lease) -> None:
        super().__init__(message)
        self.lease = lease


def lease_timeout_s() -> float:
    raw = os.environ.get(LEASE_TIMEOUT_ENV, "").strip()
    if not raw:
        return LEASE_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0 or value != value or value == float("inf"):
        raise HedgekitError(f"{LEASE_TIMEOUT_ENV}={raw!r}: give a positive number of seconds")
    return value


def _host_key() -> str:
    """This machine's boot and pid namespace (Linux), where a pid names one process; ""
    elsewhere (then only the heartbeat tells a dead holder)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{socket.gethostname()}/{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return ""


HOST_KEY = _host_key()


def holder_gone(lease: Lease) -> bool:
    """True when the lease's holder certainly died: it ran here (same machine, boot and pid
    namespace) and its pid is gone. A live pid (maybe reused) proves nothing: False."""
    if not HOST_KEY or lease.host_key != HOST_KEY:
        return False
    try:
        os.kill(int(lease.holder.split("@", 1)[0]), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):
        return False
    return False


def lease_is_dead(lease: Lease, now_ms: int) -> bool:
    """The holder is presumed dead: no heartbeat for ``lease_timeout_s()``, or ``holder_gone``."""
    return lease.age_s(now_ms) >= lease_timeout_s() or holder_gone(lease)


def wall_ms() -> int:
    return int(time.time() * 1000)


def describe_lease(lease: Lease, now_ms: int | None = None) -> str:
    """``12345@host (run, heartbeat 1.2 s ago)``."""
    age = lease.age_s(wall_ms() if now_ms is None else now_ms)
    return f"{lease.holder} ({lease.purpose}, heartbeat {age:.1f} s ago)"
