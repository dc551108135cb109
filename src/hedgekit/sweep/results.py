"""The results of a sweep or an optimization: ``results.parquet`` and ``results.csv`` (one row
per trial and data set: every parameter, every metric) and ``sweep.json`` (what was run: the
config, the params, the data sets, the objectives, the walk-forward windows), from which
``sweep.html`` is built.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pandas as pd

from hedgekit.core.errors import HedgekitError

__all__ = ["META_FILE", "backtest_command", "read_results", "write_results"]

META_FILE = "sweep.json"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return format(v, ".12g")
    return str(v)


def backtest_command(meta: dict, params: dict[str, Any], dataset: int = 0,
                     start: str | None = None, end: str | None = None) -> str:
    """The `hedgekit backtest` command line that runs one setting as a full backtest."""
    args = ["hedgekit", "backtest", str(meta["config"])]
    for path, value in params.items():
        args += ["--param", f"{path}={_fmt(value)}"]
    ds = (meta.get("datasets") or [{}])[dataset] if meta.get("datasets") else {}
    if ds.get("data"):
        args += ["--data", str(ds["data"])]
    start = start or ds.get("start")
    end = end or ds.get("end")
    if start:
        args += ["--from", str(start)]
    if end:
        args += ["--to", str(end)]
    return shlex.join(args)


def write_results(folder: str | Path, rows: list[dict[str, Any]], meta: dict) -> pd.DataFrame:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    if "error" not in df:
        df["error"] = None
    sort = [c for c in ("window", "part", "trial", "dataset") if c in df]
    if sort and len(df):
        df = df.sort_values(sort, kind="stable").reset_index(drop=True)
    # Mixed columns (a param of strings and numbers, an all-None metric) stay readable in parquet.
    for col in df.columns:
        if df[col].dtype == object and not _uniform(df[col]):
            df[col] = df[col].map(lambda v: None if v is None else str(v))
    df.to_parquet(folder / "results.parquet", index=False)
    df.to_csv(folder / "results.csv", index=False, lineterminator="\n")
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return df


def _uniform(col: pd.Series) -> bool:
    """Only strings, or only numbers (and None): parquet stores it as it is."""
    kinds = {str if isinstance(v, str) else float for v in col if v is not None}
    return len(kinds) <= 1


def read_results(folder: str | Path) -> tuple[pd.DataFrame, dict]:
    folder = Path(folder)
    path = folder / "results.parquet"
    if not path.is_file() or not (folder / META_FILE).is_file():
        raise HedgekitError(f"{folder}: no results.parquet and {META_FILE} here (run `hedgekit sweep` or `optimize`)")
    return pd.read_parquet(path), json.loads((folder / META_FILE).read_text())
