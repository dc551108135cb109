"""Requests to a run from another process (`hedgekit flatten`): queued in the journal and
carried out by the engine that holds the run, or by this process when none does."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from hedgekit.config import BacktestConfig
from hedgekit.core.errors import HedgekitError
from hedgekit.engine.lease import REQUEST_POLL_S, RunBusy, describe_lease, lease_is_dead, wall_ms
from hedgekit.engine.live import LiveEngine
from hedgekit.store.journal import REQUEST_DONE, REQUEST_FAILED, Journal, Lease


def run_of_wallet(journal: Journal, wallet: str) -> int:
    """The latest run that has ``wallet``; HedgekitError naming the known wallets otherwise."""
    registered = journal.wallets()
    runs = [run_id for run_id, name in registered if name == wallet]
    if not runs:
        latest = registered[0][0] if registered else None
        known = ", ".join(sorted(name for run_id, name in registered if run_id == latest)) or "none"
        raise HedgekitError(f"no wallet {wallet!r} in the journal's latest run (wallets: {known})")
    return runs[0]


def serve_requests_directly(journal: Journal, run_id: int, *, printer: Callable[[str], None] | None = None) -> None:
    """Carry out the run's pending requests in this process, holding the run's lease meanwhile
    (RunBusy when a live process holds it: that one serves them)."""
    run = next(r for r in journal.runs() if r.run_id == run_id)
    cfg = BacktestConfig.model_validate_json(run.config_json)
    real: dict = {}
    if run.mode == "real":
        from hedgekit.engine.real import make_venue

        network = cfg.venue.network  # an emergency stop trades where the run traded
        real = {"network": network, "venue_factory": lambda wallet: make_venue(cfg, wallet, network=network)}
    engine = LiveEngine(cfg, mode=run.mode, journal=journal, source=run.source, printer=printer, **real)  # type: ignore[arg-type]
    engine.take_lease(run_id, purpose="flatten")
    try:
        engine.attach(run_id)
        engine.serve_requests()
    finally:
        engine.release_lease()


class RequestPending(HedgekitError):
    """The run's holder did not carry out a request in time; it stays pending."""


def flatten_wallet(
    journal: Journal, wallet: str, now_ms: int, *, wait_s: float = 30.0,
    on_wait: Callable[[Lease], None] | None = None, printer: Callable[[str], None] | None = None,
    finished_ok: bool = False,
) -> str:
    """Cancel every order of ``wallet`` (latest run that has it) and close its position at
    market, reduce-only; the strategy stays stopped, so a resumed run does not re-open it.

    Queues a flatten request. While a live engine holds the run, that engine carries it out
    (``on_wait(lease)`` is called while waiting, about every 0.2 s); otherwise this process
    takes the lease and does it. Returns the result line; HedgekitError when it failed, and
    RequestPending when the live holder did not answer within ``wait_s`` (the request stays
    pending: the holder, or whoever next holds the run, carries it out). A finished run is
    refused unless ``finished_ok``: nothing trades it any more, and its last price is old."""
    run_id = run_of_wallet(journal, wallet)
    run = next(r for r in journal.runs() if r.run_id == run_id)
    if run.ended_ts is not None and not finished_ok:
        status = next((s for s in journal.wallet_status(run_id) if s.wallet == wallet), None)
        price = ""
        if status is not None and status.last_price is not None and status.last_price_ts is not None:
            age_h = (now_ms - status.last_price_ts) / 3_600_000
            price = f"; its last price, {status.last_price:,.2f}, is {age_h:,.1f} hours old"
        raise HedgekitError(
            f"run {run_id} of wallet {wallet!r} is finished (mode {run.mode}, {run.source}){price}. "
            "Flattening it would book a close at that price in a run nothing trades any more; "
            "pass --finished to do it anyway"
        )
    request_id = journal.add_request(run_id, wallet, "flatten", now_ms)
    deadline = time.monotonic() + wait_s
    while True:
        req = journal.request(request_id)
        assert req is not None
        if req.status == REQUEST_DONE:
            return req.result or ""
        if req.status == REQUEST_FAILED:
            raise HedgekitError(f"flatten {wallet}: {req.result}")
        lease = journal.lease(run_id)
        now = wall_ms()
        if lease is None or lease_is_dead(lease, now):
            with contextlib.suppress(RunBusy):  # taken meanwhile: wait for the new holder
                serve_requests_directly(journal, run_id, printer=printer)
            continue
        if time.monotonic() >= deadline:
            raise RequestPending(
                f"the engine holding run {run_id}, {describe_lease(lease, now)}, did not carry out "
                f"flatten request #{request_id} of wallet {wallet!r} within {wait_s:g} s. The "
                "request stays pending: that engine carries it out when it next looks (every "
                f"{REQUEST_POLL_S:g} s between inputs), or the next `hedgekit run`/`flatten` of "
                "this run does; `hedgekit status` lists it"
            )
        if on_wait is not None:
            on_wait(lease)
        time.sleep(0.2)
