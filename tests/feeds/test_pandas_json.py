"""freqtrade's json/jsongz candles written by pandas with orient=columns (or index): loaded
exactly as the same real data from its feather file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hedgekit.feeds.errors import DataError
from hedgekit.feeds.history import BUNDLED_BTC_1M, load_candles

FIELDS = ("ts", "open", "high", "low", "close", "volume")


def _same(a, b) -> None:
    for k in FIELDS:
        assert np.array_equal(getattr(a, k), getattr(b, k)), k


def to_json(df: pd.DataFrame, orient: str, date_format: str = "epoch") -> str:
    """What pandas writes; epoch dates (pandas' old default, deprecated in pandas 4) as ms ints."""
    if date_format == "epoch":
        df = df.assign(date=df["date"].astype("datetime64[ms, UTC]").astype("int64"))
    return df.to_json(orient=orient, date_format="iso")


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return pd.read_feather(BUNDLED_BTC_1M).iloc[:3000]  # real Binance BTCUSDT 1m bars


@pytest.mark.parametrize(("orient", "date_format", "gz"), [
    ("columns", "epoch", False), ("columns", "iso", False), ("columns", "epoch", True), ("index", "epoch", False),
])
def test_pandas_json_candles_equal_the_feather(tmp_path, real, orient, date_format, gz):
    path = tmp_path / f"BTC_USDT_USDT-1m-futures.json{'.gz' if gz else ''}"
    text = to_json(real, orient, date_format)
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    expected = load_candles(BUNDLED_BTC_1M).slice(None, int(real["date"].iloc[-1].value // 10**6) + 1)

    got = load_candles(path)

    assert len(got) == 3000
    _same(got, expected)


def test_columns_layout_keeps_row_order_past_row_ten(tmp_path, real):
    # JSON keys "10" < "9" as text: the rows must come back in the frame's order.
    obj = json.loads(to_json(real.iloc[:12], "columns"))
    path = tmp_path / "c.json"
    path.write_text(json.dumps({col: dict(sorted(v.items())) for col, v in obj.items()}))

    got = load_candles(path)

    assert np.array_equal(got.close, real["close"].iloc[:12].to_numpy())


def test_a_bad_value_names_its_row(tmp_path, real):
    obj = json.loads(to_json(real.iloc[:20], "columns"))
    obj["close"]["7"] = None
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(obj))

    with pytest.raises(DataError, match=r"bad\.json, row 8, column 'close': empty or NaN value"):
        load_candles(path)


def test_other_dicts_of_dicts_are_still_an_unknown_layout(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"meta": {"a": 1}, "more": {"b": 2}}))
    with pytest.raises(DataError, match="unknown JSON layout"):
        load_candles(Path(path))
