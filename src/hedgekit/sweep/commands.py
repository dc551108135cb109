"""`hedgekit sweep` and `hedgekit optimize` (registered on the CLI's typer app)."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from hedgekit.cli import _fail, app, console, example_path, out
from hedgekit.core.errors import HedgekitError

ParamOpt = Annotated[list[str], typer.Option(
    "--param", help="PATH=VALUES, repeatable: wallets.hedge.unit.value=0.005,0.01 | A:B:N | log:A:B:N | A:B "
                    "(interval); PATH may use wallets.*.leverage")]
DataOpt = Annotated[list[str] | None, typer.Option("--data", help="history file (repeatable: every setting on each)")]
AddressOpt = Annotated[str | None, typer.Option(
    "--address", help="Ray cluster to run on (host:port of `ray start --head`, or ray://host:10001); default: a local Ray")]
CpusOpt = Annotated[int | None, typer.Option("--cpus", min=1, help="Ray workers (default: every CPU)")]
NoRayOpt = Annotated[bool, typer.Option("--no-ray", help="run the trials in this process, one after another")]
HeatmapOpt = Annotated[str | None, typer.Option("--heatmap", help="X,Y: the two params of sweep.html's heatmaps")]
StartOpt = Annotated[str | None, typer.Option("--from", help="start time, ISO-8601 or ms")]
EndOpt = Annotated[str | None, typer.Option("--to", help="end time (exclusive)")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or table")]


class _Bar:
    """A rich progress bar with trials/s and the best result so far."""

    def __init__(self, total: int, quiet: bool, best_metric: str = "return_pct", label: str = "trials") -> None:
        self.metric = best_metric
        self.best: float | None = None
        self.best_text = "–"
        self.t0 = time.perf_counter()
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} trials/s"), TextColumn("best {task.fields[best]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True, disable=quiet,
        )
        self.task = self.progress.add_task(label, total=total, rate="–", best="–")

    def __enter__(self) -> _Bar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def update(self, done: int, total: int, row: dict[str, Any], label: str | None = None) -> None:
        v = row.get(self.metric)
        if v is not None and "error" not in row and (self.best is None or v > self.best):
            self.best = float(v)
            self.best_text = f"{v:+.2f} % ({row.get('max_drawdown_pct', float('nan')):.1f} % DD)"
        rate = done / max(time.perf_counter() - self.t0, 1e-9)
        fields: dict[str, Any] = {"rate": f"{rate:.1f}", "best": self.best_text}
        if label:
            fields["description"] = label
        self.progress.update(self.task, completed=done, total=total, **fields)


def _heatmap(text: str | None) -> tuple[str, str | None] | None:
    if not text:
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > 2 or not parts[0]:
        raise HedgekitError(f"--heatmap {text!r}: give one or two swept params, X,Y")
    return parts[0], (parts[1] if len(parts) == 2 else None)


def _command_line() -> str:
    return shlex.join(["hedgekit", *sys.argv[1:]])


def _executor(datasets, no_ray: bool, address: str | None, cpus: int | None):
    from hedgekit.sweep.runner import make_executor

    with console.status("starting Ray…" if not no_ray else "starting…"):
        return make_executor([d.loaded for d in datasets], use_ray=not no_ray, address=address, cpus=cpus)


@app.command()
def sweep(
    config: Annotated[Path | None, typer.Argument(help="YAML config; default: the bundled dual-wallet example")] = None,
    param: ParamOpt = ...,  # type: ignore[assignment]
    samples: Annotated[int | None, typer.Option("--samples", min=1, help="N random points instead of the Cartesian product")] = None,
    seed: Annotated[int, typer.Option("--seed", help="seed of --samples")] = 42,
    data: DataOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")] = Path("out/sweep"),
    address: AddressOpt = None,
    cpus: CpusOpt = None,
    no_ray: NoRayOpt = False,
    heatmap: HeatmapOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Backtest every combination of --param values (or --samples random points) on each --data set;
    writes results.parquet, results.csv and sweep.html."""
    from hedgekit.config import load_config
    from hedgekit.sweep.grid import load_datasets, run_sweep, sweep_points
    from hedgekit.sweep.html import build_sweep_report
    from hedgekit.sweep.params import parse_params
    from hedgekit.sweep.results import write_results

    cfg_path = config if config is not None else example_path("dual_wallet.yaml")
    try:
        cfg = load_config(cfg_path)
        specs = parse_params(param)
        chosen = _heatmap(heatmap)
        for p in chosen or ():
            if p is not None and p not in [s.path for s in specs]:
                raise HedgekitError(f"--heatmap {p}: not one of the --param paths")
        points, configs = sweep_points(cfg, specs, samples, seed)
        datasets = load_datasets(cfg, data, start, end)
        n = len(points) * len(datasets)
        if not quiet:
            console.print(f"hedgekit sweep: [bold]{cfg_path}[/]: {len(points)} setting(s) × {len(datasets)} data set(s) "
                          f"= {n} backtests", highlight=False)
        t0 = time.perf_counter()
        with _executor(datasets, no_ray, address, cpus) as ex:
            if not quiet:
                console.print(f"running on {ex.description}", highlight=False)
            with _Bar(n, quiet) as bar:
                rows = run_sweep(points, configs, datasets, ex, bar.update)
            where = ex.description
        elapsed = time.perf_counter() - t0
        meta = {"kind": "sweep", "command": _command_line(), "config": str(cfg_path), "params": [s.path for s in specs],
                "samples": samples, "seed": seed, "trials": len(points), "datasets": [d.meta() for d in datasets],
                "executor": where, "seconds": elapsed, "heatmap": list(chosen) if chosen else None}
        df = write_results(out_dir, rows, meta)
        page = build_sweep_report(out_dir)
    except (HedgekitError, ValueError, FileNotFoundError) as err:
        _fail(err)
        return
    if not quiet:
        _print_top(df, [s.path for s in specs])
        errors = int(df["error"].notna().sum())
        if errors:
            console.print(f"[yellow]{errors} backtest(s) refused their setting: see the error column[/]")
        console.print(f"wrote {out_dir}/ (results.parquet, results.csv, {page.name}) in {elapsed:.1f}s "
                      f"({n / max(elapsed, 1e-9):.1f} backtests/s)", highlight=False)


def _print_top(df, params: list[str], top: int = 10) -> None:
    ok = df[df["error"].isna()]
    if not len(ok):
        return
    g = ok.groupby("trial")
    by = g[params].first().join(g[["return_pct", "max_drawdown_pct", "fees", "fills"]].mean())
    by = by.sort_values("return_pct", ascending=False).head(top)
    table = Table(title=f"top {len(by)} settings by return (mean over data sets)")
    for col in ("trial", *params, "return %", "max DD %", "fees", "fills"):
        table.add_column(col, justify="right")
    for t, r in by.iterrows():
        table.add_row(str(t), *[format(r[p], "g") if isinstance(r[p], float) else str(r[p]) for p in params],
                      f"{r['return_pct']:+.2f}", f"{r['max_drawdown_pct']:.2f}", f"{r['fees']:,.2f}", f"{r['fills']:.0f}")
    out.print(table)


@app.command()
def optimize(
    config: Annotated[Path | None, typer.Argument(help="YAML config; default: the bundled dual-wallet example")] = None,
    param: ParamOpt = ...,  # type: ignore[assignment]
    trials: Annotated[int, typer.Option("--trials", min=1, help="trials per walk-forward window")] = 40,
    objective: Annotated[list[str] | None, typer.Option("--objective", help="return, max_drawdown, sharpe, calmar, return_fees (repeatable; default return and max_drawdown)")] = None,
    train: Annotated[str | None, typer.Option("--train", help="train length of each window: 90d, 12h, 2w (default: half the data)")] = None,
    test: Annotated[str | None, typer.Option("--test", help="test length after it (default: a quarter of the data)")] = None,
    storage: Annotated[str | None, typer.Option("--storage", help="optuna storage: an SQLAlchemy URL, or `journal` / `journal:DB` for the journal's database (default: OUT/optuna.db); the same command resumes from it")] = None,
    study: Annotated[str | None, typer.Option("--study", help="study name prefix (default: derived from config, params, data)")] = None,
    seed: Annotated[int, typer.Option("--seed", help="seed of the sampler")] = 42,
    data: Annotated[str | None, typer.Option("--data", help="history file (overrides the config)")] = None,
    start: StartOpt = None,
    end: EndOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")] = Path("out/optimize"),
    address: AddressOpt = None,
    cpus: CpusOpt = None,
    no_ray: NoRayOpt = False,
    heatmap: HeatmapOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Search --param with optuna on each walk-forward window's train part and score the best settings on
    its test part: out-of-sample figures, in-sample beside them. Resumable: run the same command again."""
    from hedgekit.config import load_config
    from hedgekit.sweep.grid import load_datasets
    from hedgekit.sweep.html import build_sweep_report
    from hedgekit.sweep.optimize import (
        parse_duration,
        parse_objectives,
        run_optimize,
        storage_url,
        study_key,
        walk_forward,
    )
    from hedgekit.sweep.params import parse_params
    from hedgekit.sweep.results import write_results

    cfg_path = config if config is not None else example_path("dual_wallet.yaml")
    try:
        cfg = load_config(cfg_path)
        specs = parse_params(param)
        objectives = parse_objectives(objective)
        chosen = _heatmap(heatmap)
        [dataset] = load_datasets(cfg, [data] if data else None, start, end)
        c = dataset.loaded.candles
        first, stop = int(c.ts[0]), int(c.ts[-1]) + int(c.timeframe_ms)
        span = stop - first
        train_ms = parse_duration(train, "--train") if train else span // 2
        test_ms = parse_duration(test, "--test") if test else span // 4
        windows = walk_forward(first, stop, train_ms, test_ms)
        out_dir.mkdir(parents=True, exist_ok=True)
        url = storage_url(storage, out_dir)
        name = study or f"hedgekit-{study_key(cfg, specs, objectives, dataset, windows, seed)}"
        if not quiet:
            console.print(f"hedgekit optimize: [bold]{cfg_path}[/]: {len(windows)} walk-forward window(s) × {trials} "
                          f"trials, objectives {', '.join(o.label for o in objectives)}; study {name} in {url}",
                          highlight=False, soft_wrap=True)
        t0 = time.perf_counter()
        with _executor([dataset], no_ray, address, cpus) as ex:
            if not quiet:
                console.print(f"running on {ex.description}", highlight=False)
            with _Bar(trials * len(windows), quiet, label="window 1 train") as bar:
                result = run_optimize(cfg, specs, dataset, ex, trials=trials, objectives=objectives, windows=windows,
                                      storage=url, study_name=name, seed=seed, on_result=bar.update)
            where = ex.description
        elapsed = time.perf_counter() - t0
        meta = {"kind": "optimize", "command": _command_line(), "config": str(cfg_path),
                "params": [s.path for s in specs], "trials": trials, "objectives": [o.name for o in objectives],
                "train": f"{train_ms / 86_400_000:g}d", "test": f"{test_ms / 86_400_000:g}d", "storage": url,
                "study": name, "seed": seed, "datasets": [dataset.meta()], "executor": where, "seconds": elapsed,
                "windows_result": result.windows, "resumed": result.resumed, "retried": result.retried,
                "heatmap": list(chosen) if chosen else None}
        write_results(out_dir, result.rows, meta)
        page = build_sweep_report(out_dir)
    except (HedgekitError, ValueError, FileNotFoundError) as err:
        _fail(err)
        return
    if not quiet:
        if any(result.resumed.values()):
            console.print("resumed: " + ", ".join(f"window {k + 1}: {v} trial(s) already done"
                                                  for k, v in result.resumed.items()), highlight=False)
        _print_windows(result.windows, [s.path for s in specs])
        console.print(f"wrote {out_dir}/ (results.parquet, results.csv, {page.name}) in {elapsed:.1f}s", highlight=False)


def _print_windows(windows: list[dict], params: list[str]) -> None:
    table = Table(title="walk-forward: the selected setting of each window, in-sample (train) and out-of-sample (test)")
    for col in ("window", "test part", *params, "return % in", "return % OUT", "max DD % in", "max DD % OUT"):
        table.add_column(col, justify="right")
    for w in windows:
        if "in_sample" not in w:
            continue
        i, o = w["in_sample"], w["out_of_sample"]
        table.add_row(str(w["window"] + 1), f"{w['test_start'][:10]} → {w['test_end'][:10]}",
                      *[format(w["params"][p], "g") if isinstance(w["params"][p], float) else str(w["params"][p]) for p in params],
                      _f(i.get("return_pct"), "+.2f"), _f(o.get("return_pct"), "+.2f"),
                      _f(i.get("max_drawdown_pct"), ".2f"), _f(o.get("max_drawdown_pct"), ".2f"))
    out.print(table)


def _f(v, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)
