"""Log rotation, JSON lines, and a secret set in the environment never reaching a log line."""

from __future__ import annotations

import json

import pytest
from loguru import logger

from hedgekit.logs import redact, setup_logging

SECRET = "k3yS3cretValue_9f8e7d6c"


@pytest.fixture(autouse=True)
def _restore_logging():
    yield
    logger.remove()
    logger.configure(patcher=None)


def all_text(folder) -> str:
    return "".join(p.read_text() for p in sorted(folder.iterdir()))


def test_files_rotate_at_the_size_cap(tmp_path):
    setup_logging("INFO", log_dir=tmp_path, console=False, rotation_size="2 KB")
    for i in range(200):
        logger.info(f"line {i:04d} " + "x" * 40)
    logger.remove()
    files = sorted(tmp_path.iterdir())
    assert len(files) >= 4, [f.name for f in files]
    assert all(f.stat().st_size <= 2048 + 200 for f in files)  # one line may straddle the cap
    text = all_text(tmp_path)
    assert "line 0000" in text and "line 0199" in text  # nothing lost across rotations


def test_json_lines(tmp_path):
    setup_logging("INFO", log_dir=tmp_path, console=False, json=True)
    logger.info("hello {}", "world")
    logger.remove()
    [line] = all_text(tmp_path).splitlines()
    assert json.loads(line)["record"]["message"] == "hello world"


def test_secret_from_the_environment_never_appears(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BINANCE_API_SECRET", SECRET)
    monkeypatch.setenv("HEDGEKIT_LONG_API_KEY", SECRET[::-1])
    setup_logging("DEBUG", log_dir=tmp_path / "text")
    logger.info(f"connecting with secret {SECRET} and key {SECRET[::-1]}")
    logger.warning(f"GET https://fapi.binance.com/fapi/v1/order?symbol=BTCUSDT&signature={SECRET}&timestamp=1")
    logger.debug(f"config {{'apiKey': '{SECRET}', 'secret': 'abc123def'}}")
    try:
        raise RuntimeError(f"auth failed for {SECRET}")
    except RuntimeError:
        logger.exception("order rejected")
    setup_logging("DEBUG", log_dir=tmp_path / "json", json=True)
    logger.error(f"again {SECRET}")
    logger.remove()
    console = capsys.readouterr().err
    files = all_text(tmp_path / "text") + all_text(tmp_path / "json")
    for text in (console, files):
        assert SECRET not in text and SECRET[::-1] not in text and "abc123def" not in text
        assert "***" in text
    assert "order rejected" in files and "RuntimeError" in files  # the error is still there


def test_redact_keeps_ordinary_text():
    assert redact("stop_loss SELL 0.25 BTC @ 64,200.0", {"SOME_TOKEN": "1"}) == "stop_loss SELL 0.25 BTC @ 64,200.0"
    assert redact("wss://x/ws?listenKey=abc", {}) == "wss://x/ws?..."
