"""`hedgekit` in a child process with crash points injected: the crash tests' entry point.

    python -m tests.engine.crash_child [--kill-after-intent N] [--kill-after-input N]
                                       [--kill-in-request] [--market URL] -- CLI ARGS...

SIGKILLs itself at the chosen moment through ``LiveEngine.hooks``; production code reads no
test switch. ``--market URL``: before the engine sees an input, the test's market at URL is
moved to its price (``GET URL/move?seq=&ts=&price=``, answered once the stub exchanges are
there), so a REAL run on stub exchanges stays in lock-step with its feed without timing.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import hedgekit.cli as cli
from hedgekit.cli import app
from hedgekit.engine.live import EngineHooks, LiveEngine


class KillAt(EngineHooks):
    def __init__(self, after_intent: int, after_input: int, in_request: bool) -> None:
        self.intent, self.input, self.request = after_intent, after_input, in_request

    @staticmethod
    def _die(at: str) -> None:
        sys.stderr.write(f"crash_child: SIGKILL {at}\n")  # which point fired, for the test
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def after_intent(self, intents: int) -> None:
        if self.intent and intents >= self.intent:
            self._die(f"after intent {intents}")

    def after_input(self, inputs: int) -> None:
        if self.input and inputs >= self.input:
            self._die(f"after input {inputs}")

    def in_request(self, kind: str) -> None:
        if self.request:
            self._die(f"in request {kind}")


def child_env() -> dict[str, str]:
    """The environment to start a child with. Where bytecode may not be written next to the
    sources (PYTHONDONTWRITEBYTECODE), every child would compile its ~1,000 modules again (~5 s
    of CPU each): they share a private bytecode cache instead."""
    env = dict(os.environ)
    if env.pop("PYTHONDONTWRITEBYTECODE", None):
        env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / f"hedgekit-pycache-{os.getuid()}")
    return env


def moving_market(feed: Any, url: str) -> AsyncIterator[Any]:
    """``feed`` with the market at ``url`` moved to each input's price before it is handed on."""

    async def gen() -> AsyncIterator[Any]:
        async for item in feed:
            price = getattr(item, "close", getattr(item, "price", None))
            if price is not None:
                with urllib.request.urlopen(f"{url}/move?seq={item.seq}&ts={item.ts}&price={price}", timeout=60) as r:
                    r.read()
            yield item

    return gen()


def main() -> None:
    split = sys.argv.index("--")
    p = argparse.ArgumentParser()
    p.add_argument("--kill-after-intent", type=int, default=0)
    p.add_argument("--kill-after-input", type=int, default=0)
    p.add_argument("--kill-in-request", action="store_true")
    p.add_argument("--market", default=None)
    a = p.parse_args(sys.argv[1:split])
    if a.market:
        make_feed = cli._make_feed
        cli._make_feed = lambda *args, **kw: moving_market(make_feed(*args, **kw), a.market)  # type: ignore[assignment]
    LiveEngine.hooks = KillAt(a.kill_after_intent, a.kill_after_input, a.kill_in_request)
    app(sys.argv[split + 1:], prog_name="hedgekit")


if __name__ == "__main__":
    main()
