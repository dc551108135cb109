"""Where downloaded files live: freqtrade's names, venue quirks, config references."""

from __future__ import annotations

import pytest

from hedgekit.feeds.datadir import DownloadError, data_file, parse_market_ref

PERP = "BTC/USDT:USDT"


@pytest.mark.parametrize(
    ("exchange", "symbol", "timeframe", "kind", "expected"),
    [
        ("binanceusdm", PERP, "1m", "candles", "binance/futures/BTC_USDT_USDT-1m-futures.feather"),
        ("binance", PERP, "8h", "funding", "binance/futures/BTC_USDT_USDT-8h-funding_rate.feather"),
        ("binanceusdm", PERP, "8h", "mark", "binance/futures/BTC_USDT_USDT-8h-mark.feather"),
        ("binance", "BTC/USDT", "1m", "candles", "binance/BTC_USDT-1m.feather"),
        ("bybit", "ETH/USDT:USDT", "5m", "candles", "bybit/futures/ETH_USDT_USDT-5m-futures.feather"),
        ("hyperliquid", "BTC/USDC:USDC", "1h", "funding",
         "hyperliquid/futures/BTC_USDC_USDC-1h-funding_rate.feather"),
    ],
)
def test_files_are_named_as_freqtrade_names_them(tmp_path, exchange, symbol, timeframe, kind, expected):
    assert data_file(tmp_path, exchange, symbol, timeframe, kind) == tmp_path / expected


def test_a_spot_market_has_no_funding_file(tmp_path):
    with pytest.raises(DownloadError, match="BTC/USDT is a spot market: it has no funding series"):
        data_file(tmp_path, "binance", "BTC/USDT", "8h", "funding")


def test_a_funding_reference_uses_the_venues_funding_interval(tmp_path):
    ref = parse_market_ref("hyperliquid/BTC/USDC:USDC/funding")
    assert ref is not None
    assert ref.path(tmp_path) == tmp_path / "hyperliquid/futures/BTC_USDC_USDC-1h-funding_rate.feather"


def test_a_reference_to_data_not_downloaded_says_which_command_fetches_it(tmp_path):
    from hedgekit.engine.session import resolve_data_path
    from hedgekit.feeds.errors import DataError

    with pytest.raises(DataError) as err:
        resolve_data_path("bybit/ETH/USDT:USDT/5m", tmp_path)
    assert "no downloaded data for bybit/ETH/USDT:USDT/5m" in str(err.value)
    assert (f"hedgekit download --exchange bybit --symbol ETH/USDT:USDT --timeframe 5m "
            f"--from 2024-01-01 --dir {tmp_path}") in str(err.value)  # fmt: skip
    with pytest.raises(DataError, match=r"ETH/USDT:USDT --from 2025-01-01T00:00:00Z --to 2025-02-01T00:00:00Z"):
        resolve_data_path("bybit/ETH/USDT:USDT/funding", tmp_path, "2025-01-01", "2025-02-01")


def test_paths_are_not_mistaken_for_references():
    assert parse_market_ref("data/BTC_USDT_USDT-1m-futures.feather") is None
    assert parse_market_ref("../shared/data/x.csv") is None
    ref = parse_market_ref("binanceusdm/BTC/USDT:USDT/1m")
    assert ref is not None and (ref.exchange, ref.symbol, ref.timeframe) == ("binanceusdm", PERP, "1m")


