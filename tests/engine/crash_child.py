"""`hedgekit` in a child process with crash points injected: the crash tests' entry point.

    python -m tests.engine.crash_child [--kill-after-intent N] [--kill-after-input N]
                                       [--kill-in-request] -- CLI ARGS...

SIGKILLs itself at the chosen moment through ``LiveEngine.hooks``; production code reads no
test switch.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from hedgekit.cli import app
from hedgekit.engine.live import EngineHooks, LiveEngine


class KillAt(EngineHooks):
    def __init__(self, after_intent: int, after_input: int, in_request: bool) -> None:
        self.intent, self.input, self.request = after_intent, after_input, in_request

    @staticmethod
    def _die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def after_intent(self, intents: int) -> None:
        if self.intent and intents >= self.intent:
            self._die()

    def after_input(self, inputs: int) -> None:
        if self.input and inputs >= self.input:
            self._die()

    def in_request(self, kind: str) -> None:
        if self.request:
            self._die()


def main() -> None:
    split = sys.argv.index("--")
    p = argparse.ArgumentParser()
    p.add_argument("--kill-after-intent", type=int, default=0)
    p.add_argument("--kill-after-input", type=int, default=0)
    p.add_argument("--kill-in-request", action="store_true")
    a = p.parse_args(sys.argv[1:split])
    LiveEngine.hooks = KillAt(a.kill_after_intent, a.kill_after_input, a.kill_in_request)
    app(sys.argv[split + 1:], prog_name="hedgekit")


if __name__ == "__main__":
    main()
