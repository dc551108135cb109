"""The `hedgekit` command line."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from hedgekit.core.errors import HedgekitError

app = typer.Typer(
    name="hedgekit",
    help="Automated hedging strategies on crypto perpetual futures, with a realistic backtester.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
# Piped output (CI logs, `make run | tee`) gets a wide table instead of 80 truncated columns.
out = Console(width=None if sys.stdout.isatty() else 140)

DEFAULT_EXAMPLE = "dual_wallet.yaml"


@app.callback()
def _root() -> None:
    """hedgekit: backtest, paper-trade and run hedging strategies on crypto perpetuals."""


def example_path(name: str) -> Path:
    from importlib.resources import files

    return Path(str(files("hedgekit") / "examples" / name))


def _fail(err: Exception) -> None:
    console.print(f"[bold red]error:[/] {err}", highlight=False)
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
) -> None:
    """Backtest the wallets of CONFIG on history and write fills, orders, equity and a summary."""
    from hedgekit.config import load_config
    from hedgekit.engine.session import load_data, run_backtest

    if engine_mode not in ("fast", "reference"):
        _fail(HedgekitError(f"--engine {engine_mode!r}: use 'fast' or 'reference'"))
    cfg_path = config if config is not None else example_path(DEFAULT_EXAMPLE)
    try:
        cfg = load_config(cfg_path)
        t0 = time.perf_counter()
        if not quiet:
            console.print(f"hedgekit backtest: [bold]{cfg_path}[/]")
        loaded = load_data(cfg, data, start, end)
        c = loaded.candles
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
        elapsed = time.perf_counter() - t0
    except (HedgekitError, ValueError, FileNotFoundError) as err:
        _fail(err)
        return
    if not quiet:
        _print_summary(result.summary)
        console.print(f"wrote {folder}/ (fills.csv, orders.csv, equity.csv, summary.json) in {elapsed:.2f}s")


def _print_summary(summary: dict) -> None:
    d = summary["data"]
    table = Table(title=f"{d['start']} → {d['end']}  ({d['bars']:,} bars)")
    for col in ("wallet", "start", "end", "return %", "max DD %", "fees", "funding", "fills", "resets", "phase", "B&H %"):
        table.add_column(col, justify="right" if col != "wallet" else "left")
    rows = list(summary["wallets"].items()) + [("TOTAL", summary["total"])]
    for name, w in rows:
        table.add_row(
            name, f"{w['start_equity']:,.2f}", f"{w['end_equity']:,.2f}", f"{w['return_pct']:+.2f}",
            f"{w['max_drawdown_pct']:.2f}", f"{w['fees']:,.2f}", f"{w['funding']:,.2f}",
            str(w["fills"]), str(w["resets"]), w.get("final_phase", ""),
            f"{w['buy_and_hold_return_pct']:+.2f}",
        )
    out.print(table)


def main() -> None:  # pragma: no cover - console entry
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
