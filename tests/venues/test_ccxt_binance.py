"""REAL trading on Binance USD-M through ccxt, against a local stub that verifies the signatures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.venues.stubs.binance_usdm import API_KEY, SECRET, BinanceUsdmStub, sign


@pytest.fixture
def stub() -> Iterator[BinanceUsdmStub]:
    with BinanceUsdmStub() as s:
        yield s


def _signed_get(stub: BinanceUsdmStub, path: str, query: str, *, secret: str = SECRET,
                tamper: bool = False) -> requests.Response:  # fmt: skip
    sig = sign(query, secret)
    if tamper:  # change the request after signing it
        query = query.replace("recvWindow=5000", "recvWindow=6000")
    return requests.get(f"{stub.url}{path}?{query}&signature={sig}", headers={"X-MBX-APIKEY": API_KEY},
                        timeout=5)  # fmt: skip


def test_stub_checks_the_hmac_signature_as_binance_does(stub: BinanceUsdmStub) -> None:
    import time

    query = f"timestamp={int(time.time() * 1000)}&recvWindow=5000"
    good = _signed_get(stub, "/fapi/v1/positionSide/dual", query)
    assert good.status_code == 200 and good.json() == {"dualSidePosition": False}
    tampered = _signed_get(stub, "/fapi/v1/positionSide/dual", query, tamper=True)
    wrong_key = _signed_get(stub, "/fapi/v1/positionSide/dual", query, secret=SECRET + "x")
    for bad in (tampered, wrong_key):
        assert bad.status_code == 400
        assert bad.json() == {"code": -1022, "msg": "Signature for this request is not valid."}
    assert stub.rejected_signatures == 2
    no_key = requests.get(f"{stub.url}/fapi/v1/positionSide/dual?{query}&signature={sign(query)}", timeout=5)
    assert no_key.status_code == 401 and no_key.json()["code"] == -2015
