"""RECOMMENDATION's read-only view of a real account (ccxt), with a fake exchange."""

from __future__ import annotations

import asyncio

import pytest

from hedgekit.venues.ccxt_account import AccountError, AccountReader, Credentials, load_credentials

KEY, SECRET = "AbCdEf123456key", "ZyXwVu987654secret"


class FakeExchange:
    def __init__(self, positions, orders, fail: Exception | None = None) -> None:
        self.positions, self.orders, self.fail = positions, orders, fail
        self.calls: list[str] = []

    async def fetch_positions(self, symbols):
        self.calls.append("fetch_positions")
        if self.fail:
            raise self.fail
        return self.positions

    async def fetch_open_orders(self, symbol):
        self.calls.append("fetch_open_orders")
        return self.orders

    async def create_order(self, *args, **kwargs):  # must never be reachable
        self.calls.append("create_order")

    async def close(self):
        self.calls.append("close")


def reader(exchange) -> AccountReader:
    return AccountReader("long", "binanceusdm", "BTC/USDT:USDT", Credentials(KEY, SECRET), exchange=exchange)


def test_reads_position_and_orders_only_through_fetch_methods():
    ex = FakeExchange([{"symbol": "BTC/USDT:USDT", "contracts": 0.25, "contractSize": 1, "side": "short",
                        "entryPrice": 64200.0}], [{"id": 1}, {"id": 2}])
    r = reader(ex)
    snap = asyncio.run(r.read())
    assert snap.position == -0.25 and snap.entry_price == 64200.0 and snap.open_orders == 2
    assert snap.describe() == "ACCOUNT long (testnet): BTC/USDT:USDT position -0.25 @ 64,200.00, 2 open order(s)"
    with pytest.raises(AccountError, match="read-only"):
        r.exchange.create_order("BTC/USDT:USDT", "market", "buy", 1)
    with pytest.raises(AccountError, match="read-only"):
        r.exchange.cancel_all_orders("BTC/USDT:USDT")
    assert ex.calls == ["fetch_positions", "fetch_open_orders"]


def test_errors_are_clear_and_carry_no_secret():
    ex = FakeExchange([], [], fail=RuntimeError(f"401 https://fapi.binance.com/x?signature={SECRET}&apiKey={KEY}"))
    with pytest.raises(AccountError) as err:
        asyncio.run(reader(ex).read())
    assert SECRET not in str(err.value) and KEY not in str(err.value)
    assert "cannot read the account" in str(err.value)


def test_credentials_from_the_environment_per_wallet():
    env = {"HEDGEKIT_LONG_API_KEY": KEY, "HEDGEKIT_LONG_API_SECRET": SECRET}
    creds = load_credentials("long", env)
    assert creds is not None and creds.api_key == KEY
    assert KEY not in repr(creds) and SECRET not in repr(creds)
    assert load_credentials("hedge", env) is None
    with pytest.raises(AccountError, match="HEDGEKIT_LONG_API_SECRET"):
        load_credentials("long", {"HEDGEKIT_LONG_API_KEY": KEY})


def test_real_ccxt_exchange_is_built_offline_on_testnet():
    r = AccountReader("long", "binanceusdm", "BTC/USDT:USDT", Credentials(KEY, SECRET))
    assert r.exchange._exchange.isSandboxModeEnabled
    asyncio.run(r.close())
