"""SIGKILL at seeded random points of a REAL-on-stub run, on each venue (issue 12 acceptance).

The test process owns the stub exchanges (one account per wallet) and a small market server;
the run is the real ``hedgekit run --mode real`` CLI in a child process
(``tests/engine/crash_child.py``) that SIGKILLs itself after its N-th order intent or after
an input, or that a stub SIGKILLs in its N-th order request (placed, not answered); it is
started again (it resumes from the journal) until the kills are done; the last one runs to
the end. The child asks the market server to move the stubs to each input's price
before its engine sees it; the market never moves back (after a restart the inputs the dead
process had not checkpointed are reported again, the exchange stays where it is).

Measured on the stub side, before every move (the state the market moves in): a nonzero
position whose closing-side trigger orders do not cover it is unprotected for the inputs and
the data seconds until that move. After the last run: every trade at the venue journaled once
(lost fills), one order per client id (duplicate orders), the journal's position and working
orders are the venue's, and no reconciliation halted a wallet (unresolved diffs).

Price path: the first bars of the bundled real Binance USD-M BTCUSDT 1m history walked in steps
of at most 20 USD (``price_points`` in test_real.py), one flat bar per price; the timestamps are
synthetic (one second apart), the prices are real.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import yaml

from hedgekit.engine.real import VENUE_URLS_ENV
from hedgekit.store.journal import Journal
from hedgekit.venues.ccxt_hyperliquid import HyperliquidProfile
from tests.engine.crash_child import child_env
from tests.engine.test_real import WALLETS, busy_config, price_points
from tests.venues.stubs import binance_usdm as bn
from tests.venues.stubs import hyperliquid as hl

REPO = Path(__file__).resolve().parents[2]
VENUES = ("binance", "hyperliquid")
POINT_MS = 1_000  # synthetic: one second of data per price point
CHILD_TIMEOUT_S = 600.0  # an upper bound only: a child that hangs fails the run


class Book(Protocol):
    """One wallet's account at a stub exchange, as the checks see it."""

    def move_to(self, price: float) -> None: ...
    def position(self) -> float: ...
    def cover(self) -> float: ...  # closing-side trigger quantity still working
    def trade_ids(self) -> list[str]: ...
    def client_ids(self) -> list[str]: ...  # of every order of ours the venue ever took
    def open_ids(self) -> set[str]: ...  # of our working orders
    def venue_id(self, client_id: str) -> str: ...
    def stop(self) -> None: ...


class Killer:
    """SIGKILLs the child from inside a stub, at the ``n``-th order request the venue carried
    out, before it answers: the order is placed, the child never hears of it."""

    def __init__(self) -> None:
        self.left = 0
        self.pid: int | None = None
        self.started = threading.Event()  # the pid is known
        self.fired = False
        self._lock = threading.Lock()

    def arm(self, n: int) -> None:
        self.left, self.pid, self.fired = n, None, False
        self.started.clear()

    def start(self, pid: int) -> None:
        self.pid = pid
        self.started.set()

    def placed(self) -> bool:
        """After an order request was carried out; True when the child was killed (the answer
        is then not sent)."""
        with self._lock:
            if self.left <= 0:
                return False
            self.left -= 1
            if self.left:
                return False
            self.started.wait(timeout=60)
            assert self.pid is not None
            os.kill(self.pid, signal.SIGKILL)
            self.fired = True
            return True


class BinanceBook:
    def __init__(self, price: float, killer: Killer | None = None) -> None:
        self.stub = bn.BinanceUsdmStub(price=price, balance=100_000.0).start()
        if killer is not None:
            inner = self.stub._dispatch

            def dispatch(h: Any, method: str, path: str, query: str, body: str) -> Any:
                answer = inner(h, method, path, query, body)
                if (method, path) in bn._PLACE and killer.placed():
                    raise bn._Drop
                return answer

            self.stub._dispatch = dispatch  # type: ignore[method-assign]

    def env(self) -> dict[str, Any]:
        return self.stub.urls()

    def move_to(self, price: float) -> None:
        self.stub.move_to(price)

    def position(self) -> float:
        return self.stub.position

    def cover(self) -> float:
        s = self.stub
        closing = "SELL" if s.position > 0 else "BUY"
        with s._lock:
            return sum(o.qty - o.executed for o in s.algos.values() if o.open and o.side == closing)

    def trade_ids(self) -> list[str]:
        return [str(t["id"]) for t in self.stub.trades]

    def _ours(self) -> list[bn.StubOrder]:
        with self.stub._lock:
            return [o for o in [*self.stub.orders.values(), *self.stub.algos.values()] if o.client_id.startswith("hk-")]

    def client_ids(self) -> list[str]:
        return [o.client_id for o in self._ours()]

    def open_ids(self) -> set[str]:
        return {o.client_id for o in self._ours() if o.open}

    def venue_id(self, client_id: str) -> str:
        return client_id

    def stop(self) -> None:
        self.stub.stop()


class HyperliquidBook:
    profile = HyperliquidProfile(rate_limit=False)

    def __init__(self, price: float, killer: Killer | None = None) -> None:
        self.stub = hl.start_stub(price, usdc=100_000.0)
        self.user = hl.MAIN_ADDRESS.lower()
        if killer is not None:
            inner = self.stub.handle

            def handle(path: str, raw: bytes) -> tuple[int, str]:
                answer = inner(path, raw)
                if path == "/exchange" and answer[0] == 200 and _action(raw) == "order" and killer.placed():
                    raise hl.DropAnswer
                return answer

            self.stub.handle = handle  # type: ignore[method-assign]

    def env(self) -> dict[str, Any]:
        return {"public": self.stub.url, "private": self.stub.url}

    def move_to(self, price: float) -> None:
        self.stub.move_to(price)

    def position(self) -> float:
        return float(self.stub.account(self.user).szi)

    def _ours(self) -> list[hl.StubOrder]:
        with self.stub._lock:
            return [o for o in self.stub.orders.values() if o.user == self.user and o.cloid]

    def cover(self) -> float:
        buy = self.position() < 0
        return sum(float(o.sz) for o in self._ours()
                   if o.status == "open" and o.is_trigger and not o.triggered and o.is_buy == buy)  # fmt: skip

    def trade_ids(self) -> list[str]:
        return [str(f["tid"]) for f in self.stub.account(self.user).fills]

    def client_ids(self) -> list[str]:
        return [str(o.cloid) for o in self._ours()]

    def open_ids(self) -> set[str]:
        return {str(o.cloid) for o in self._ours() if o.status == "open"}

    def venue_id(self, client_id: str) -> str:
        return self.profile.venue_client_id(client_id)

    def stop(self) -> None:
        self.stub.stop()


def _action(raw: bytes) -> str | None:
    try:
        return json.loads(raw).get("action", {}).get("type")
    except ValueError:
        return None


class Market:
    """The stubs' price, moved by the child (``GET /move?seq=&ts=&price=``) before each input,
    never back; before each move it records which wallet's position its stops do not cover."""

    def __init__(self, books: dict[str, Book]) -> None:
        self.books = books
        self.moved = -1  # the last seq the market went to
        self.last_ts: int | None = None
        self.moves = 0
        self.unprotected_inputs = 0
        self.unprotected_ms = 0
        self.notes: list[str] = []
        self._lock = threading.Lock()
        market = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                q = dict(parse_qsl(urlsplit(self.path).query))
                market.move(int(q["seq"]), int(q["ts"]), float(q["price"]))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def move(self, seq: int, ts: int, price: float) -> None:
        with self._lock:
            if seq <= self.moved:
                return  # reported again after a restart: the exchange is already there
            self.check(ts)
            for book in self.books.values():
                book.move_to(price)
            self.moved, self.last_ts = seq, ts
            self.moves += 1

    def check(self, ts: int) -> None:
        """The state the market is about to move in (the engine has handled the last input)."""
        bad = []
        for w, book in self.books.items():
            pos = book.position()
            if abs(pos) > 1e-9 and book.cover() < abs(pos) - 1e-9:
                bad.append(f"{w} {pos:+g} covered {book.cover():g}")
        if bad:
            self.unprotected_inputs += 1
            self.unprotected_ms += ts - (self.last_ts if self.last_ts is not None else ts)
            self.notes.append(f"before the move at {ts}: {', '.join(bad)}")

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class KillRow:
    venue: str
    kills: int = 0
    at_intent: int = 0  # of the kills: at an order intent (journaled, not sent)
    at_request: int = 0  # of the kills: in an order request the venue carried out, unanswered
    runs: int = 0  # child processes started
    inputs: int = 0  # price moves of the path
    fills: int = 0
    lost_fills: int = 0
    duplicate_orders: int = 0
    unprotected_inputs: int = 0
    unprotected_s: float = 0.0
    unresolved: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost_fills or self.duplicate_orders or self.unprotected_inputs or self.unresolved)


def write_setup(tmp: Path, venue: str, bars: int) -> tuple[Path, Path, float]:
    """The config and the flat-bar CSV of the path; returns them and the first price."""
    busy_config(tmp)
    cfg_path = tmp / "busy.yaml"
    data = yaml.safe_load(cfg_path.read_text())
    if venue == "hyperliquid":  # 5 significant figures: whole dollars at BTC's price
        data["venue"]["name"] = "hyperliquid"
        data["instrument"].update({"symbol": "BTCUSDC", "tick_size": 1.0})
    cfg_path.write_text(yaml.safe_dump(data))
    points = price_points(bars)
    t0 = points[0].ts
    csv = tmp / "points.csv"
    csv.write_text("timestamp,open,high,low,close,volume\n" + "".join(
        f"{t0 + p.seq * POINT_MS},{p.price},{p.price},{p.price},{p.price},1\n" for p in points))  # fmt: skip
    return cfg_path, csv, points[0].price


def kill_points(rng: random.Random, kills: int, inputs: int) -> list[tuple[str, int, int]]:
    """``kills`` crash points of three kinds, as many of each, shuffled, as (kind, N, SEQ):
    "intent" dies at the N-th order intent (1-3) of the process (journaled, not sent);
    "request" in its N-th order request (1-3) the venue carried out, before the answer; both
    at the path's last inputs when no order is left to send. "input" dies after input SEQ
    (spread over the path, in order; one that a restart's checkpoint already passed dies
    after its first input)."""
    kinds = [("intent", "request", "input")[i % 3] for i in range(kills)]
    rng.shuffle(kinds)
    seqs = iter(sorted(rng.sample(range(1, inputs - 2), kinds.count("input"))))
    return [(k, rng.randint(1, 3), inputs - 2) if k != "input" else (k, 0, next(seqs)) for k in kinds]


def resume_after(db: Path) -> int:
    """The seq the next start resumes after (the wallets' lowest checkpoint), -1 at first."""
    if not db.exists():
        return -1
    journal = Journal.open(db, readonly=True)
    try:
        runs = journal.runs()
        if not runs:
            return -1
        points = [journal.load_checkpoint(runs[-1].run_id, w) for w in WALLETS]
        return min(-1 if p is None else p[0] for p in points)
    finally:
        journal.close()


def run_kills(venue: str, kills: int, *, seed: int, bars: int, tmp: Path) -> KillRow:
    """The run on ``venue`` killed ``kills`` times at seeded random points, then run to its
    end; the row of what it left."""
    tmp.mkdir(parents=True, exist_ok=True)
    cfg_path, csv, first = write_setup(tmp, venue, bars)
    make = BinanceBook if venue == "binance" else HyperliquidBook
    books: dict[str, Any] = {}
    row = KillRow(venue)
    try:
        killer = Killer()
        for w in WALLETS:
            books[w] = make(first, killer)
        market = Market(books)
        env = {**child_env(), VENUE_URLS_ENV: json.dumps({w: b.env() for w, b in books.items()})}
        for w in WALLETS:
            if venue == "binance":
                env |= {f"HEDGEKIT_{w.upper()}_API_KEY": bn.API_KEY, f"HEDGEKIT_{w.upper()}_API_SECRET": bn.SECRET}
            else:
                env |= {f"HEDGEKIT_{w.upper()}_AGENT_KEY": hl.AGENT_KEY,
                        f"HEDGEKIT_{w.upper()}_WALLET_ADDRESS": hl.MAIN_ADDRESS}  # fmt: skip
        db = tmp / "real.db"
        args = ["--log-dir", str(tmp / "logs"), "run", str(cfg_path), "--mode", "real",
                "--feed", f"replay:{csv}", "--speed", "max", "--db", str(db)]  # fmt: skip
        inputs = len(csv.read_text().splitlines()) - 1
        rng = random.Random(seed)
        try:
            for kind, n, seq in [*kill_points(rng, kills, inputs), ("end", 0, 0)]:
                # the replay goes on after the last checkpoint: that many inputs to SEQ
                kill = [] if kind == "end" else ["--kill-after-input", str(max(1, seq - resume_after(db)))]
                if kind == "intent":
                    kill += ["--kill-after-intent", str(n)]
                killer.arm(n if kind == "request" else 0)
                log = tmp / f"child{row.runs}.log"
                rc = _child(["--market", market.url, *kill], args, env, log, killer.start)
                row.runs += 1
                if kill and rc == -9:
                    row.kills += 1
                    row.at_intent += "SIGKILL after intent" in log.read_text(errors="replace")
                    row.at_request += killer.fired
                elif rc != 0 or kill:
                    row.notes.append(f"child {kill or 'to the end'} exited {rc}: {log.read_text(errors='replace')[-1500:]}")
                    break
        finally:
            market.stop()
        halts = [line for f in sorted(tmp.glob("child*.log")) for line in f.read_text(errors="replace").splitlines()
                 if "reconciliation: HALTED" in line]  # fmt: skip
        row.unresolved += len(halts)
        row.notes += halts[:3]
        row.inputs = market.moves
        row.unprotected_inputs = market.unprotected_inputs
        row.unprotected_s = market.unprotected_ms / 1000
        row.notes += market.notes[:5]
        _check_end(row, db, books)
    finally:
        for b in books.values():
            b.stop()
    return row


def _child(crash: list[str], args: list[str], env: dict[str, str], log: Path, started: Callable[[int], None]) -> int:
    with log.open("ab") as err:
        p = subprocess.Popen([sys.executable, "-m", "tests.engine.crash_child", *crash, "--", *args],
                             cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
        started(p.pid)
        try:
            return p.wait(timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise


def _check_end(row: KillRow, db: Path, books: dict[str, Any]) -> None:
    journal = Journal.open(db, readonly=True)
    try:
        run_id = journal.runs()[-1].run_id
        status = {s.wallet: s for s in journal.wallet_status(run_id)}
        for w, book in books.items():
            trades = Counter(book.trade_ids())
            fills = Counter(f.fill_id for f in journal.fills(run_id, w))
            row.fills += sum(trades.values())
            lost = (trades - fills) + (fills - trades)  # missing, or journaled twice / unknown
            row.lost_fills += sum(lost.values())
            if lost:
                row.notes.append(f"{w}: fills journal vs venue differ: {dict(lost)}")
            dup = {c: n for c, n in Counter(book.client_ids()).items() if n > 1}
            row.duplicate_orders += sum(n - 1 for n in dup.values())
            if dup:
                row.notes.append(f"{w}: client ids sent twice: {dup}")
            working = {book.venue_id(o.client_id) for o in journal.orders(run_id, w, working_only=True)}
            diff = working ^ book.open_ids()
            s = status.get(w)
            off = s is None or abs(s.position - book.position()) > 1e-9
            row.unresolved += len(diff) + off
            if diff or off:
                row.notes.append(f"{w}: journal vs venue: orders {sorted(diff)}, position "
                                 f"{s.position if s else None} vs {book.position()}")  # fmt: skip
            if abs(book.position()) > 1e-9 and book.cover() < abs(book.position()) - 1e-9:
                row.unprotected_inputs += 1  # left at the end without its stops
                row.notes.append(f"{w}: ends at {book.position():+g} covered {book.cover():g}")
    finally:
        journal.close()


def print_rows(rows: list[KillRow], title: str, width: int | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("venue", "kills", "at intent / request / input", "runs", "inputs", "fills", "lost fills", "duplicate orders",
                "s without stop", "inputs without stop", "unresolved diffs"):  # fmt: skip
        table.add_column(col, justify="left" if col == "venue" else "right")
    for r in rows:
        table.add_row(r.venue, str(r.kills), f"{r.at_intent} / {r.at_request} / {r.kills - r.at_intent - r.at_request}", str(r.runs), str(r.inputs), str(r.fills), str(r.lost_fills),
                      str(r.duplicate_orders), f"{r.unprotected_s:g}", str(r.unprotected_inputs), str(r.unresolved),
                      style=None if r.clean else "bold red")  # fmt: skip
    Console(width=width).print(table)
