"""A live wallet and what its checkpoint stores (versioned JSON): the runner, its place in the
input stream, and in REAL the venue's plain-data state instead of the ccxt client."""

from __future__ import annotations

import json
from array import array
from dataclasses import dataclass, field

import numpy as np

from hedgekit.core.atr import AtrTracker
from hedgekit.core.snapshot import SnapshotError, check_header, decode, encode, snapshot_header
from hedgekit.core.strategy import Strategy
from hedgekit.engine.guard import DrawdownGuard
from hedgekit.engine.real import RealVenue
from hedgekit.engine.runner import WalletRunner
from hedgekit.engine.walker import MarketWalker
from hedgekit.venues.base import ExchangePort
from hedgekit.venues.recommend import RecommendationSink
from hedgekit.venues.sim import SimExchange


class EngineHooks:
    """The moments between two durable steps where a crash is most telling. The engine calls
    these and they do nothing; crash tests inject a subclass that kills the process there
    (``LiveEngine.hooks``), so production code reads no test switch."""

    def after_intent(self, intents: int) -> None:
        """An order intent (the ``intents``-th of this process) was committed; the venue has
        not seen the order yet."""

    def after_input(self, inputs: int) -> None:
        """The ``inputs``-th input of this process was processed (and committed if it changed
        anything)."""

    def in_request(self, kind: str) -> None:
        """A request (``flatten``) was carried out in memory; its batch is not committed."""


@dataclass
class LiveWallet:
    """One wallet: its runner (the state) and where it stands in the input stream.

    Everything but ``walker``/``paused``/``gap_next``/``recommendations`` is in the snapshot
    (``bars`` through the runner when it is the strategy's ATR; otherwise it only serves
    before start). The runner talks to the exchange port: the simulated exchange in PAPER, a
    ``RecommendationSink`` in front of it in RECOMMENDATION; ``walker`` walks the simulated
    market behind either.
    """

    name: str
    index: int  # position in cfg.wallets
    strategy_name: str
    runner: WalletRunner
    walker: MarketWalker | None  # None in REAL: the exchange moves its own market
    cursor: int = -1  # seq of the last input fully processed and committed
    seen: int = -1  # seq of the last input processed (committed or, if quiet, not yet)
    started: bool = False
    funding_index: int = 0  # next funding payment to apply
    last_ts: int = 0
    paused: bool = False
    gap_next: bool = False  # the next price jumped (after a stale period)
    recommendations: list[str] = field(default_factory=list)
    # The bars seen so far, for the warm-up and the ATR (the runner's ATR source when the
    # strategy wants one, so it is in the snapshot). None: no warm-up and no ATR.
    bars: AtrTracker | None = None
    # Times of the first and the last input seen while warming up (the days count from the first).
    first_ts: int | None = None
    warm_ts: int = 0
    # (ts, close) of the inputs of the warm-up, for a grid hedge's seed_history (None: not
    # a grid hedge, or no warm-up). Memory only: see the module's docstring.
    history: WarmupPrices | None = None
    # risk.max_drawdown_pct, checked after every input (in the snapshot).
    guard: DrawdownGuard | None = None
    # REAL: why reconciliation stopped this wallet (it then trades nothing; its stops stay).
    halted: str | None = None
    unreconciled: bool = False  # REAL: the venue failed mid-input; reconcile first

    @property
    def sim(self) -> SimExchange | RealVenue:
        """The account behind the port (what the status and the journal read): the simulated
        one, or in REAL the ccxt venue's book."""
        if self.walker is None:
            venue = self.runner.venue
            assert isinstance(venue, RealVenue)
            return venue
        return self.walker.venue

    def take_recommendations(self) -> list[str]:
        """RECOMMENDATION: the lines its sink wrote since the last call (kept in ``recommendations``)."""
        port = self.runner.venue
        lines = port.drain() if isinstance(port, RecommendationSink) else []
        self.recommendations.extend(lines)
        return lines

    @property
    def real(self) -> RealVenue | None:
        venue = self.runner.venue
        return venue if isinstance(venue, RealVenue) else None


@dataclass
class WarmupPrices:
    """The warm-up inputs a wallet saw, not traded: what the backtest seeds a grid with."""

    ts: array = field(default_factory=lambda: array("q"))
    close: array = field(default_factory=lambda: array("d"))

    def add(self, ts: int, close: float) -> None:
        self.ts.append(int(ts))
        self.close.append(float(close))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array(self.ts, dtype=np.int64), np.array(self.close, dtype=float)


@dataclass
class Snapshot:
    """What a checkpoint stores (versioned JSON, see ``dump_snapshot``): the runner and the
    engine's per-wallet counters."""

    runner: WalletRunner
    funding_index: int
    last_ts: int
    # False: flattened during its warm-up, so it never traded and never will in this run.
    started: bool = True
    guard: DrawdownGuard | None = None  # absent from snapshots written before it existed
    # REAL: the venue's plain-data state (RealVenue.engine_state); the runner's venue, a live
    # ccxt client, is not stored (None in the snapshot) and is re-attached on resume.
    venue_state: dict | None = None
    halted: str | None = None  # REAL: LiveWallet.halted, kept by a restart (absent before it was)


def dump_snapshot(snap: Snapshot) -> bytes:
    """A checkpoint as JSON bytes, headed by the versions it was written with."""
    runner = snap.runner
    venue = runner.venue
    if isinstance(venue, RealVenue):
        snap.venue_state = venue.engine_state()
        runner.venue = None  # type: ignore[assignment]
    try:
        doc = snapshot_header(runner.strategy) | {"state": encode(snap)}
    finally:
        runner.venue = venue
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


def load_snapshot(blob: bytes, strategy: type[Strategy]) -> Snapshot:
    """The checkpoint ``dump_snapshot`` wrote; another version or strategy is refused."""
    if blob[:1] == b"\x80":
        raise SnapshotError(
            "the checkpoint is a pickle written by an earlier hedgekit (pickled checkpoints "
            "are no longer read: they can run code and do not survive an upgrade); finish or "
            "flatten that run with the hedgekit that started it, or start a new run"
        )
    try:
        doc = json.loads(blob)
    except ValueError as e:
        raise SnapshotError(f"the checkpoint is not valid JSON ({e})") from None
    check_header(doc, strategy)
    snap = decode(doc["state"])
    if not isinstance(snap, Snapshot):
        raise SnapshotError(f"the checkpoint holds a {type(snap).__name__}, not a wallet snapshot")
    return snap


def port_for(mode: str, sim: SimExchange, strategy: Strategy) -> ExchangePort:
    """What the runner sends orders to: the simulator (PAPER) or the sink before it."""
    return RecommendationSink(sim, strategy) if mode == "recommendation" else sim


def walker_of(runner: WalletRunner) -> MarketWalker:
    """The walker of the simulated exchange behind ``runner``'s port (PAPER, RECOMMENDATION)."""
    port = runner.venue
    sim = port.sim if isinstance(port, RecommendationSink) else port
    if not isinstance(sim, SimExchange):
        raise TypeError(f"the live engine walks a simulated exchange, not {type(sim).__name__}")
    return MarketWalker(runner, sim)
