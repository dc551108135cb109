"""Alerts go out through apprise to a local JSON endpoint (``json://127.0.0.1:PORT/``) and
through apprise's own custom-plugin mechanism; they never block, never raise, and never show
a token."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import apprise
import pytest
from loguru import logger

from hedgekit.alerts import Alerts
from hedgekit.config import ConfigError, parse_config
from hedgekit.logs import redact, redact_url, url_secrets

FAKE_TOKEN = "hkFAKEtoken0123456789abcdef"  # never sent anywhere but 127.0.0.1
FAKE_PASSWORD = "hkFAKEpassword42"
WALLETS = [{"strategy": "long_wallet", "name": "long", "allocation": 1000, "unit": {"value": 100}}]


class Receiver:
    """A local HTTP server that keeps every JSON notification apprise posts to it; ``gate``
    (when set) holds each answer until the test opens it - a chat service that hangs."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.arrived = threading.Semaphore(0)
        self.gate: threading.Event | None = None
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                          **json.loads(body)})  # fmt: skip
                receiver.arrived.release()
                if receiver.gate is not None:
                    receiver.gate.wait(30)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str = "") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def stop(self) -> None:
        if self.gate is not None:
            self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(name="receiver")
def receiver_fixture() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(name="logs")
def logs_fixture(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """Every loguru line (redacted as hedgekit's own sinks are) and every std-logging record
    (apprise's), as text."""
    caplog.set_level(logging.DEBUG)
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{message}")
    try:
        yield lines
    finally:
        logger.remove(sink)
        lines.append(caplog.text)


def test_each_kind_of_alert_arrives_as_a_short_line(receiver: Receiver) -> None:
    alerts = Alerts([receiver.url("hook")], label="TESTNET", min_interval_s=3600)
    alerts.error("long", RuntimeError("venue unreachable"))  # urgent: sent at once
    assert alerts.flush()
    alerts.fill("long", "stop_loss", "sell", 0.01, 95_445.0, position=0.02)
    alerts.refusal("hedge", "stop_entry_short", "insufficient margin at 95,000")
    alerts.reconnect("binanceusdm user stream", 12.4)
    alerts.reconciliation("long", "placed 2 missing orders, cancelled 1 orphan, 1 foreign order left")
    alerts.guard_trip("hedge", "max_drawdown_pct", "drawdown 21 % > 20 %: wallet stopped")
    assert alerts.flush()
    alerts.close()
    first, second = receiver.received
    assert (first["path"], first["title"], first["message"]) == (
        "/hook", "hedgekit TESTNET ERROR", "ERROR long: RuntimeError: venue unreachable")
    assert first["type"] == "info" and second["title"] == "hedgekit TESTNET 5 events"
    assert second["message"].splitlines() == [
        "FILL long: stop_loss sell 0.01 @ 95,445 (position 0.02)",
        "REFUSED hedge: stop_entry_short: insufficient margin at 95,000",
        "RECONNECTED binanceusdm user stream after 12 s",
        "RECONCILED long: placed 2 missing orders, cancelled 1 orphan, 1 foreign order left",
        "GUARD hedge: max_drawdown_pct: drawdown 21 % > 20 %: wallet stopped",
    ]
    assert alerts.sent == 2 and alerts.failed == 0


def test_a_burst_of_fills_is_coalesced_and_never_waits_for_a_hanging_service(receiver: Receiver) -> None:
    receiver.gate = threading.Event()  # the service answers nothing until the gate opens
    alerts = Alerts([receiver.url()], min_interval_s=3600, max_lines=10)
    alerts.fill("long", "market_buy", "buy", 0.01, 95_000)
    receiver.arrived.acquire()  # the first notification is in flight, and hangs
    for i in range(200):  # the trading loop goes on: each call only queues a line
        alerts.fill("long", "grid_sell", "sell", 0.001, 95_000 + i)
    receiver.gate.set()
    assert alerts.flush()
    alerts.close()
    assert len(receiver.received) == 2  # 201 fills, two notifications
    body = receiver.received[1]["message"].splitlines()
    assert body[0] == "FILL long: grid_sell sell 0.001 @ 95,000" and len(body) == 11
    assert body[-1] == "... and 190 more"


def test_a_full_queue_drops_the_oldest_lines_and_says_so(receiver: Receiver) -> None:
    receiver.gate = threading.Event()
    alerts = Alerts([receiver.url()], min_interval_s=3600, max_lines=3, max_queue=5)
    alerts.fill("long", "market_buy", "buy", 0.01, 1.0)
    receiver.arrived.acquire()
    for i in range(12):
        alerts.reconnect(f"feed {i}")
    receiver.gate.set()
    assert alerts.flush()
    assert receiver.received[1]["message"].splitlines() == [
        "RECONNECTED feed 7", "RECONNECTED feed 8", "RECONNECTED feed 9", "... and 9 more"]
    alerts.close()


def test_failing_services_are_logged_never_raised_and_tokens_never_shown(receiver: Receiver, logs: list[str]) -> None:
    receiver.status = 500

    @apprise.decorators.notify(on="hkbroken")
    def broken(body: str, title: str, notify_type: str, meta: dict[str, Any], *args: Any, **kwargs: Any) -> bool:
        # apprise's plugin mechanism: this "service" fails loudly, quoting its own URL
        raise ConnectionError(f"cannot reach {meta['url']}")

    urls = [
        f"hkbroken://{FAKE_TOKEN}/12345678",
        f"json://hedgekit:{FAKE_PASSWORD}@127.0.0.1:{receiver.port}/{FAKE_TOKEN}",
        "not a url at all",
    ]
    alerts = Alerts(urls, min_interval_s=0)
    alerts.error("hedge", f"the venue said: invalid token {FAKE_TOKEN}")  # a token in a message too
    alerts.fill("hedge", "market_buy", "buy", 0.01, 95_000)
    assert alerts.flush()
    alerts.close()
    lines = [line for r in receiver.received for line in r["message"].splitlines()]
    assert lines == ["ERROR hedge: the venue said: invalid token ***", "FILL hedge: market_buy buy 0.01 @ 95,000"]
    assert {r["path"] for r in receiver.received} == {f"/{FAKE_TOKEN}"}  # the token did reach the service
    assert alerts.failed >= 1  # every service failed one way or the other
    text = "\n".join(logs)
    assert "could not be delivered to 3 service(s) (hkbroken://***, json://***, ***)" in text
    assert "alerts[2] (***) is not a URL apprise can use: skipped" in text
    assert FAKE_TOKEN not in text and FAKE_PASSWORD not in text
    assert FAKE_TOKEN not in redact(f"{urls[1]} failed")


def test_url_secrets_are_the_tokens_not_hosts_users_or_numbers() -> None:
    assert url_secrets("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-100123456") == [
        "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"]
    assert url_secrets("discord://112233445566/wEbHoOkToKeN_abc") == ["wEbHoOkToKeN_abc"]
    assert url_secrets(f"json://hedgekit:{FAKE_PASSWORD}@hooks.example.org:8443/notify/x7-Topic") == [FAKE_PASSWORD, "x7-Topic"]
    assert redact_url("discord://112233445566/wEbHoOkToKeN_abc") == "discord://***"


def test_no_alerts_configured_is_a_quiet_no_op() -> None:
    alerts = Alerts([])
    alerts.fill("long", "market_buy", "buy", 0.01, 95_000)
    alerts.error("long", "boom")
    assert not alerts.enabled and alerts.flush() and alerts.sent == 0


def test_config_takes_apprise_urls_and_never_dumps_or_quotes_their_tokens() -> None:
    url = f"tgram://{FAKE_TOKEN}/-100123456"
    cfg = parse_config({"wallets": WALLETS, "alerts": [url, "json://127.0.0.1:8080/"]})
    assert cfg.alerts == [url, "json://127.0.0.1:8080/"]
    dumped = cfg.model_dump_json()  # what the journal and summary.json keep
    assert '"alerts":["tgram://***","json://***"]' in dumped and FAKE_TOKEN not in dumped
    assert parse_config({"wallets": WALLETS}).alerts == []
    with pytest.raises(ConfigError, match=r"alerts\[1\] is not an apprise URL") as info:
        parse_config({"wallets": WALLETS, "alerts": [url, FAKE_TOKEN]}, "live.yaml")
    assert FAKE_TOKEN not in str(info.value) and "live.yaml" in str(info.value)
