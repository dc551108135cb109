"""The `hedgekit` command line."""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from hedgekit import __version__, build_mode
from hedgekit.cli_output import out, print_data_quality, print_download, print_summary
from hedgekit.core.errors import HedgekitError
from hedgekit.logs import redact

app = typer.Typer(
    name="hedgekit",
    help="Automated hedging strategies on crypto perpetual futures, with a realistic backtester.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

DEFAULT_EXAMPLE = "dual_wallet.yaml"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"hedgekit {__version__}, backtest hot path {build_mode()}")
        raise typer.Exit()


@app.callback()
def _root(
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING, ERROR")] = "INFO",
    log_dir: Annotated[Path, typer.Option("--log-dir", help="rotating log files go here")] = Path("logs"),
    log_json: Annotated[bool, typer.Option("--log-json", help="log files as JSON lines")] = False,
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="print the version and whether the hot path is compiled")] = False,
) -> None:
    """hedgekit: backtest, paper-trade and run hedging strategies on crypto perpetuals."""
    from hedgekit.logs import setup_logging

    if log_level.upper() not in ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"):
        _fail(HedgekitError(f"--log-level {log_level!r}: use DEBUG, INFO, WARNING or ERROR"))
    try:
        setup_logging(log_level, log_dir=log_dir, json=log_json)
    except OSError as err:
        _fail(HedgekitError(f"--log-dir {log_dir}: cannot write log files there ({_os_reason(err, log_dir)}); "
                            "give a writable folder with --log-dir"))


def example_path(name: str) -> Path:
    from importlib.resources import files

    return Path(str(files("hedgekit") / "examples" / name))


def _os_reason(err: OSError, path: Path) -> str:
    """Why ``path`` cannot be written, in words (the errno name, and which part of it is a file)."""
    reason = err.strerror or type(err).__name__
    for parent in (path, *path.parents):
        if parent.exists() and not parent.is_dir():
            return f"{parent} is a file, not a folder"
    return reason


def _output_folder(path: Path, option: str) -> Path | None:
    """Check an output folder before any work is done: it must be a folder this process can
    write into (created if missing), not an existing file; a clear error otherwise. Returns the
    outermost folder created here, which a failed command removes again (``_drop_if_empty``)."""
    if path.exists() and not path.is_dir():
        raise HedgekitError(f"{option} {path}: is an existing file, not a folder; give a folder path "
                            "(it is created if missing)")
    created = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        created = folder  # the outermost folder this command creates
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise HedgekitError(f"{option} {path}: cannot write there ({_os_reason(err, path)}); "
                            "give a writable folder") from None
    return created


def _drop_if_empty(path: Path | None, created: Path | None) -> None:
    if path is None or created is None:
        return
    for folder in (path, *path.parents):
        try:
            folder.rmdir()  # only an empty folder goes
        except OSError:
            return
        if folder == created:
            return


def _open_journal(db: str | None, *, readonly: bool = False):
    """Journal.open with OS and database errors (a read-only folder, a path under a file) as
    one line naming the journal."""
    from sqlalchemy.exc import SQLAlchemyError

    from hedgekit.store.journal import Journal

    try:
        return Journal.open(db, readonly=readonly)
    except (OSError, SQLAlchemyError) as err:
        where = redact(str(db if db is not None else "state/hedgekit.db"))
        orig = getattr(err, "orig", None) or err  # the driver's own words ("unable to open database file")
        reason = _os_reason(err, Path(where)) if isinstance(err, OSError) else str(orig).splitlines()[0][:200]
        raise HedgekitError(f"journal {where}: cannot open or create it ({reason}); "
                            "give a writable path with --db") from None


def _fail(err: Exception) -> None:
    # Escaped: messages name fields like wallets[0].leverage, which are not markup.
    # Redacted like every log line: an error may quote a URL or a value with a secret. Config
    # errors mask and cut the values they quote themselves (their "field: problem" lines
    # would read as secret pairs here).
    text = str(err) if getattr(err, "values_redacted", False) else redact(str(err))
    console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def backtest(
    config: Annotated[Path | None, typer.Argument(help="YAML config; default: the bundled dual-wallet example")] = None,
    data: Annotated[str | None, typer.Option("--data", help="history file (overrides the config)")] = None,
    start: Annotated[str | None, typer.Option("--from", help="start time, ISO-8601 or ms")] = None,
    end: Annotated[str | None, typer.Option("--to", help="end time (exclusive)")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")] = Path("out/backtest"),
    equity_every: Annotated[int | None, typer.Option("--equity-every", min=1, help="write equity every N bars")] = None,
    engine_mode: Annotated[str, typer.Option("--engine", help="fast | reference")] = "fast",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or table")] = False,
    png: Annotated[bool, typer.Option("--png", help="also write static PNG charts")] = False,
    html: Annotated[bool, typer.Option("--html/--no-html", help="write report.html")] = True,
    param: Annotated[list[str] | None, typer.Option("--param", help="PATH=VALUE: set one config field, e.g. wallets.hedge.unit.value=0.02 (repeatable; as in `hedgekit sweep`)")] = None,
) -> None:
    """Backtest the wallets of CONFIG on history and write fills, orders, equity, a summary and report.html."""
    from hedgekit.config import load_config
    from hedgekit.engine.session import load_data, run_backtest
    from hedgekit.preflight import check_inputs

    if engine_mode not in ("fast", "reference"):
        _fail(HedgekitError(f"--engine {engine_mode!r}: use 'fast' or 'reference'"))
    cfg_path = config if config is not None else example_path(DEFAULT_EXAMPLE)
    created: Path | None = None
    try:
        cfg = load_config(cfg_path)
        if param:
            cfg = _set_params(cfg, param)
        created = _output_folder(out_dir, "--out")  # before the run: a bad --out must not cost a backtest
        t0 = time.perf_counter()
        if not quiet:
            console.print(f"hedgekit backtest: [bold]{cfg_path}[/]")
        if quiet:
            loaded = load_data(cfg, data, start, end)
        else:
            with console.status("loading and checking the data…"):
                loaded = load_data(cfg, data, start, end)
        c = loaded.candles
        check_inputs(cfg, c, funding_file=_funding_file(cfg))
        if not quiet:
            console.print(
                f"data: {c.path} ({len(c):,} bars, sha256 {c.sha256[:12]}…), funding: {loaded.funding_source}",
                highlight=False,
            )
        if quiet:
            result = run_backtest(cfg, loaded=loaded, mode=engine_mode)  # type: ignore[arg-type]
        else:
            with Progress(
                TextColumn("[progress.description]{task.description}"), BarColumn(),
                MofNCompleteColumn(), TimeRemainingColumn(), console=console, transient=True,
            ) as bar:
                task = bar.add_task("backtesting", total=len(c))
                result = run_backtest(
                    cfg, loaded=loaded, mode=engine_mode,  # type: ignore[arg-type]
                    progress=lambda i, n: bar.update(task, completed=i),
                )
        folder = result.write(out_dir, equity_every=equity_every)
        summary = result.summary
        del result, loaded, c  # the run, its frames and the candles go before the reports read the files back (peak memory)
        gc.collect()
        written = ["fills.csv", "orders.csv", "equity.csv", "cycles.csv", "summary.json"]
        written += _write_reports(folder, html=html, png=png)
        elapsed = time.perf_counter() - t0
    except (HedgekitError, ValueError, FileNotFoundError) as err:
        _drop_if_empty(out_dir, created)
        _fail(err)
        return
    except OSError as err:  # the folder became unwritable during the run (disk full, ...)
        _fail(HedgekitError(f"--out {out_dir}: cannot write the results ({_os_reason(err, out_dir)})"))
        return
    if not quiet:
        print_summary(summary)
        print_data_quality(summary)
        console.print(f"wrote {folder}/ ({', '.join(written)}) in {elapsed:.2f}s, {build_mode()}", highlight=False)


def _funding_file(cfg) -> str | None:
    """The funding file the run reads (its name is checked against the symbol), if any."""
    from hedgekit.engine.session import resolve_data_path

    f = cfg.venue.funding.file
    return None if f is None or cfg.instrument.contract == "spot" else str(resolve_data_path(f, cfg.data.download_dir))


def _set_params(cfg, texts: list[str]):
    """``--param PATH=VALUE`` of `hedgekit backtest`: one value each (a sweep gives several)."""
    from hedgekit.sweep.params import ParamError, apply_params, parse_params

    point = {}
    for spec in parse_params(texts):
        values = spec.points() if spec.count or not spec.is_range else ()
        if len(values) != 1:
            raise ParamError(f"--param {spec.path}: `hedgekit backtest` takes one value per param "
                             "(several values are a sweep: `hedgekit sweep`)")
        point[spec.path] = values[0]
    return apply_params(cfg, point)


def _write_reports(folder: Path, *, html: bool, png: bool) -> list[str]:
    names: list[str] = []
    if not (html or png):
        return names
    from hedgekit.report.html import build_report, load_output

    run = load_output(folder)  # read once for the page and the PNGs (a year of equity rows)
    if html:
        names.append(build_report(folder, run).name)
    if png:
        from hedgekit.report.png import write_pngs

        names += [p.name for p in write_pngs(folder, run)]
    return names


@app.command()
def report(
    out_dir: Annotated[Path, typer.Argument(help="a backtest output folder")],
    png: Annotated[bool, typer.Option("--png", help="also write static PNG charts")] = False,
) -> None:
    """Rebuild report.html (and PNG charts) from an output folder's files."""
    from hedgekit.report.html import ReportError

    try:
        names = _write_reports(out_dir, html=True, png=png)
    except (ReportError, HedgekitError, FileNotFoundError) as err:
        _fail(err)
        return
    except OSError as err:
        _fail(HedgekitError(f"{out_dir}: cannot write the report there ({_os_reason(err, out_dir)})"))
        return
    except (ValueError, TypeError, KeyError) as err:  # an edited file the checks at reading let through
        _fail(HedgekitError(f"{out_dir}: cannot build the report from its files ({type(err).__name__}: "
                            f"{str(err)[:200]}); were they edited? Rewrite the folder with "
                            f"`hedgekit backtest --out {out_dir}`"))
        return
    console.print(f"wrote {out_dir}/ ({', '.join(names)})", highlight=False)


# -- download ------------------------------------------------------------------------------------


@app.command()
def download(
    exchange: Annotated[str | None, typer.Option("--exchange", help="ccxt exchange id: binanceusdm, binance, bybit, hyperliquid, ...")] = None,
    symbol: Annotated[str | None, typer.Option("--symbol", help="ccxt symbol: BTC/USDT:USDT (perpetual), BTC/USDT (spot)")] = None,
    timeframe: Annotated[str, typer.Option("--timeframe", help="candle timeframe")] = "1m",
    start: Annotated[str | None, typer.Option("--from", help="first bar, ISO-8601 or ms; default: update the existing file")] = None,
    end: Annotated[str | None, typer.Option("--to", help="end (exclusive); default now")] = None,
    folder: Annotated[Path, typer.Option("--dir", help="data folder (freqtrade layout: DIR/<exchange>/futures/...)")] = Path("data"),
    funding: Annotated[bool, typer.Option("--funding/--no-funding", help="funding-rate history (perpetuals)")] = True,
    mark: Annotated[bool, typer.Option("--mark/--no-mark", help="mark-price candles (perpetuals, where the venue has them)")] = True,
    list_tf: Annotated[str | None, typer.Option("--list-timeframes", metavar="EXCHANGE", help="list the timeframes EXCHANGE offers and exit")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Download candles, funding rates and mark prices into freqtrade's feather files, incrementally."""
    from rich.progress import TaskID

    from hedgekit.feeds.datadir import quirks_for
    from hedgekit.feeds.download import Downloader, list_timeframes

    created: Path | None = None
    try:
        if list_tf is not None:
            q = quirks_for(list_tf)
            out.print(f"{list_tf}: {' '.join(list_timeframes(list_tf))}", highlight=False)
            extra = f"funding {q.funding_timeframe or 'none'}, mark {q.mark_timeframe or 'none'}, {q.candle_limit} candles per request"
            out.print(extra + (f"; {q.note}" if q.note else ""), highlight=False)
            return
        if exchange is None or symbol is None:
            raise HedgekitError("download needs --exchange and --symbol (or --list-timeframes EXCHANGE)")
        created = _output_folder(folder, "--dir")  # before any request: a bad folder must not cost a download
        loader = Downloader(exchange, symbol, folder)
        show = not quiet and console.is_terminal
        with Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TimeRemainingColumn(), console=console, transient=True, disable=not show,
        ) as bar:
            tasks: dict[str, TaskID] = {}

            def progress(kind: str, done: int, total: int) -> None:
                if kind not in tasks:
                    tasks[kind] = bar.add_task(f"{exchange} {symbol} {kind}", total=max(total, 1))
                bar.update(tasks[kind], completed=done)

            result = loader.download(timeframe, start, end, funding=funding, mark=mark, progress=progress)
    except (HedgekitError, ValueError) as err:
        _drop_if_empty(folder, created)
        _fail(err)
        return
    except OSError as err:  # the folder became unwritable meanwhile (disk full, ...)
        _fail(HedgekitError(f"--dir {folder}: cannot write the data ({_os_reason(err, Path(err.filename or folder))})"))
        return
    print_download(result)


# -- real time: run, status, flatten -------------------------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="YAML config")],
    mode: Annotated[str | None, typer.Option("--mode", help="paper | recommendation (default: the config's trading_mode)")] = None,
    feed: Annotated[str, typer.Option("--feed", help="live | replay:FILE | stdin (CSV bars piped in: timestamp,open,high,low,close)")] = "live",
    speed: Annotated[str, typer.Option("--speed", help="replay speed: 60 = one minute of data per second; max")] = "max",
    db: Annotated[str | None, typer.Option("--db", help="journal: SQLAlchemy URL or SQLite path (default ./state/hedgekit.db)")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="also export fills.csv/orders.csv here at the end")] = None,
    cancel_on_exit: Annotated[bool, typer.Option("--cancel-on-exit", help="cancel working orders on exit")] = False,
    stale_after: Annotated[float, typer.Option("--stale-after", help="seconds without a price before pausing")] = 30.0,
    mainnet: Annotated[bool, typer.Option("--mainnet", help="REAL: trade on mainnet (needs venue.network: mainnet too); RECOMMENDATION: read the mainnet account")] = False,
    yes_mainnet: Annotated[bool, typer.Option("--yes-mainnet", help="REAL on mainnet with stdin not a terminal: confirm without typing")] = False,
    adopt: Annotated[bool, typer.Option("--adopt", help="REAL: take the venue's position as the wallet's when it disagrees with the journal")] = False,
    account: Annotated[bool | None, typer.Option("--account/--no-account", help="RECOMMENDATION: read each wallet's real account (read-only, needs its API keys); default: only with --feed live")] = None,
) -> None:
    """Run the wallets of CONFIG in real time: PAPER (simulated fills), RECOMMENDATION (prints
    actions) or REAL (trades through ccxt; testnet unless venue.network: mainnet and --mainnet).

    The process holds the run's lease in the journal while it runs (heartbeat every few
    seconds): a second `run` of the same run is refused, and `hedgekit flatten` from another
    shell is carried out by this process between two inputs. Ctrl-C / SIGTERM stops cleanly.
    """
    import asyncio

    from hedgekit.config import load_config
    from hedgekit.engine.live import LiveEngine
    from hedgekit.engine.session import load_data
    from hedgekit.preflight import check_inputs

    created: Path | None = None
    try:
        cfg = load_config(config)
        chosen = (mode or (cfg.trading_mode or "")).lower()
        if chosen not in ("paper", "recommendation", "real"):
            raise HedgekitError("--mode must be 'paper', 'recommendation' or 'real' (or set trading_mode in the config)")
        real_kwargs: dict = {}
        network = "testnet"
        if chosen == "real":
            from hedgekit.engine.real import check_network, make_venue
            from hedgekit.logs import mark_mainnet

            network = check_network(cfg, str(config), mainnet_flag=mainnet, yes_mainnet=yes_mainnet,
                                    stdin_tty=sys.stdin.isatty(), ask=lambda q: str(typer.prompt(q)))  # fmt: skip
            if network == "mainnet":
                mark_mainnet()
                console.print("[bold red]*** MAINNET: REAL MONEY ***[/]")
            real_kwargs = {"network": network, "adopt": adopt,
                           "venue_factory": lambda wallet: make_venue(cfg, wallet, network=network)}  # fmt: skip
        if out_dir is not None:
            created = _output_folder(out_dir, "--out")  # before the run, not after it
        journal = _open_journal(db)
        funding = None
        if feed.startswith("replay:"):
            path = Path(feed.removeprefix("replay:")).resolve()
            source = f"replay:{path}"
            loaded = load_data(cfg, str(path))
            check_inputs(cfg, loaded.candles, funding_file=_funding_file(cfg))
            funding = loaded.funding
        elif feed == "live":
            source = f"live:{cfg.venue.name}:{cfg.instrument.symbol}"
        elif feed == "stdin":
            source = "stdin"
        else:
            raise HedgekitError(f"--feed {feed!r}: use 'live', 'replay:FILE' or 'stdin'")
        engine = LiveEngine(
            cfg, mode=chosen, journal=journal, source=source, funding=funding,  # type: ignore[arg-type]
            printer=lambda line: out.print(line, highlight=False, soft_wrap=True),
            cancel_on_exit=cancel_on_exit, **real_kwargs,
        )
        if chosen == "recommendation" and (account if account is not None else feed == "live"):
            _show_accounts(cfg, mainnet)  # before the lease: a prompt must not hold it idle
            engine.spot_reader = _spot_reader(cfg, mainnet)  # a grid's spot_quantity: account
        engine.open(_now_ms())
        stream = _make_feed(cfg, feed, speed, engine.resume_after, stale_after, sandbox=network != "mainnet")
        asyncio.run(engine.run(stream))
        if (feed.startswith("replay:") or feed == "stdin") and not engine.stopped_early:
            journal.finish_run(engine.run_id, _now_ms())
        if out_dir is not None:
            from hedgekit.report.results import export_run

            export_run(journal, engine.run_id, cfg, out_dir)
        _print_status(journal, engine.run_id)
        journal.close()
        if engine.stop_signal is not None:
            # Interrupted, not finished: a script must be able to tell (130 Ctrl-C, 143 SIGTERM).
            console.print(f"run {engine.run_id} interrupted by signal {engine.stop_signal}: it is resumable, "
                              "run the same command again")
            raise typer.Exit(128 + engine.stop_signal)
    except (HedgekitError, ValueError, FileNotFoundError) as err:
        _drop_if_empty(out_dir, created)
        _fail(err)


def _show_accounts(cfg, mainnet: bool) -> None:
    """With HEDGEKIT_<WALLET>_API_KEY/SECRET set, print each wallet's real position (read-only)."""
    import asyncio

    from hedgekit.venues.ccxt_account import AccountReader, load_credentials

    readers = []
    for w in cfg.wallets:
        creds = load_credentials(w.name)
        if creds is not None:
            readers.append(AccountReader(w.name, cfg.venue.name, _ccxt_symbol(cfg.instrument.symbol), creds, mainnet=mainnet))
    if not readers:
        return
    if mainnet:
        typer.confirm("Read the MAINNET accounts (read-only; nothing is placed)?", abort=True)

    async def read_all() -> None:
        for reader in readers:
            try:
                out.print((await reader.read()).describe(), highlight=False, markup=False)
            finally:
                await reader.close()

    asyncio.run(read_all())


def _spot_reader(cfg, mainnet: bool):
    """Wallet -> (asset, coins on its spot wallet), read with the wallet's REAL credentials
    (read-only: the venue is not prepared, nothing is set or placed)."""
    from hedgekit.engine.real import make_venue

    return lambda wallet: make_venue(cfg, wallet, network="mainnet" if mainnet else "testnet").spot_balance()


def _make_feed(cfg, feed: str, speed: str, resume_after: int, stale_after: float, sandbox: bool = True):
    if feed.startswith("replay:"):
        from hedgekit.feeds.replay import ReplayFeed, parse_speed

        return ReplayFeed(feed.removeprefix("replay:"), speed=parse_speed(speed), resume_after_seq=resume_after)
    if feed == "stdin":
        import sys

        from hedgekit.feeds.stream import StreamFeed

        return StreamFeed(sys.stdin, resume_after_seq=resume_after)
    from hedgekit.feeds.live import CcxtFeed

    return CcxtFeed(exchange_id=cfg.venue.name, symbol=_ccxt_symbol(cfg.instrument.symbol), sandbox=sandbox, stale_after=stale_after)


def _ccxt_symbol(symbol: str) -> str:
    """BTCUSDT -> BTC/USDT:USDT (a linear perpetual in ccxt's unified notation)."""
    if "/" in symbol:
        return symbol
    for quote in ("USDT", "USDC", "USD"):
        if symbol.endswith(quote):
            return f"{symbol[: -len(quote)]}/{quote}:{quote}"
    return symbol


def _print_status(journal, run_id: int | None = None) -> None:
    rows = journal.wallet_status(run_id)
    if not rows:
        out.print("no wallets in this journal yet")
        return
    now = _now_ms()
    if any("MAINNET" in s.mode for s in rows):
        out.print("[bold red]*** MAINNET: these wallets trade REAL MONEY ***[/]")
    table = Table(title=f"run {rows[0].run_id} ({rows[0].mode})")
    for col in ("wallet", "strategy", "phase", "unit", "anchor", "position", "realized", "unrealized", "equity", "orders", "last price", "age"):
        table.add_column(col, justify="left" if col in ("wallet", "strategy", "phase") else "right")
    for s in rows:
        working = journal.orders(s.run_id, s.wallet, working_only=True)
        age_s = max(now - s.last_price_ts, 0) / 1000 if s.last_price_ts else None
        age = "-" if age_s is None else (f"{age_s:.0f}s" if age_s < 3600 else f"{age_s / 3600:.1f}h")
        table.add_row(
            s.wallet, s.strategy, s.phase + (" (paused)" if s.paused else ""),
            "-" if s.unit is None else str(s.unit), "-" if s.anchor is None else f"{s.anchor:,.2f}",
            f"{s.position:.6g}", f"{s.realized_pnl:,.2f}", f"{s.unrealized_pnl:,.2f}", f"{s.equity:,.2f}",
            str(len(working)), f"{s.last_price:,.2f}", age,
        )
    out.print(table)
    for s in rows:
        for o in journal.orders(s.run_id, s.wallet, working_only=True):
            unit = "" if o.unit is None else f" unit {o.unit}"
            trig = "market" if o.trigger is None else f"{o.trigger:,.2f}"
            out.print(f"  {s.wallet}: {o.kind} {o.side} {o.qty:.6g} @ {trig}{unit}  [{o.client_id}]", highlight=False, markup=False)
    from hedgekit.engine.live import describe_lease, lease_is_dead

    run_id = rows[0].run_id
    lease = journal.lease(run_id)
    if lease is not None:
        stale = " [stale: presumed dead]" if lease_is_dead(lease, now) else ""
        out.print(f"run {run_id} held by {describe_lease(lease, now)}{stale}", highlight=False, markup=False)
    for r in journal.requests(run_id, pending_only=True):
        out.print(f"pending: {r.kind} {r.wallet} (request #{r.id}, {max(now - r.created_ts, 0) / 1000:.0f} s ago)",
                  highlight=False, markup=False)


@app.command()
def status(
    db: Annotated[str | None, typer.Option("--db", help="journal: SQLAlchemy URL or SQLite path")] = None,
) -> None:
    """Every wallet of the latest run: phase, unit, position, working orders, PnL, last price."""

    try:
        journal = _open_journal(db, readonly=True)
        _print_status(journal)
        journal.close()
    except HedgekitError as err:
        _fail(err)


@app.command()
def flatten(
    wallet: Annotated[str, typer.Argument(help="wallet name")],
    db: Annotated[str | None, typer.Option("--db", help="journal: SQLAlchemy URL or SQLite path")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    wait: Annotated[float, typer.Option("--wait", min=0, help="seconds to wait for a running engine to do it")] = 30.0,
    finished: Annotated[bool, typer.Option("--finished", help="also flatten a finished run (at its last, old, price)")] = False,
) -> None:
    """Emergency stop: cancel all of WALLET's orders and close its position at market (reduce-only);
    its strategy stays stopped.

    Works while `hedgekit run` runs: the request goes through the journal and the running
    engine carries it out between two inputs (this command waits up to --wait seconds for
    it). If the engine does not answer in time the request stays pending and is carried out
    when the engine next looks, or by the next `run`/`flatten` of the run. With no running
    engine (none, or its heartbeat is stale: killed), this command does it itself.
    """
    from hedgekit.engine.lease import describe_lease
    from hedgekit.engine.requests import RequestPending, flatten_wallet, run_of_wallet

    try:
        journal = _open_journal(db)
        run_of_wallet(journal, wallet)  # an unknown wallet fails before the question
        if not yes:
            typer.confirm(f"Cancel every order of wallet {wallet!r} and close its position at market?", abort=True)
        with console.status(f"flattening {wallet}…") as spinner:
            def waiting(lease) -> None:
                spinner.update(f"waiting for the running engine {escape(describe_lease(lease))} to flatten {wallet}…")

            msg = flatten_wallet(journal, wallet, _now_ms(), wait_s=wait, on_wait=waiting, finished_ok=finished)
        out.print(msg, highlight=False)
        _print_status(journal)
        journal.close()
    except RequestPending as err:
        console.print(f"[bold yellow]not done yet:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except HedgekitError as err:
        _fail(err)


# `hedgekit sweep` and `hedgekit optimize` (registered on `app` by importing the module).
from hedgekit.sweep import commands as _sweep_commands  # noqa: E402,F401


def main() -> None:  # pragma: no cover - console entry
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
