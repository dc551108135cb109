"""Which unit steps cost the fast path a stop it would not make anyway? (issue 13, item 5)

Runs the dual wallet on the SYNTHETIC coin-year of ``bench_sweep`` (fast path) and classifies
every unit step (``UnitChanged``) the strategies receive by

* where it happens: at a level where the wallet's venue has a trigger too ("at trigger": the
  walk stops there for the fill whatever the tracker says), or at a tracker level only;
* what it does: the strategy answers with commands (a slide) or with none.

A step that is "tracker only" and answers nothing is what a strategy-declared ignore range
could skip (the quiet band would widen past it). Diagnostic only: it wraps the runner and the
strategy's entry point in this process, prints a table, asserts nothing.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sweep import synthetic_year  # noqa: E402

from hedgekit.cli import example_path  # noqa: E402
from hedgekit.config import load_config  # noqa: E402
from hedgekit.core.events import UnitChanged  # noqa: E402
from hedgekit.core.strategy import Strategy  # noqa: E402
from hedgekit.engine.runner import WalletRunner  # noqa: E402
from hedgekit.engine.session import run_backtest  # noqa: E402


def main() -> None:
    where: dict[int, str] = {}  # id(UnitChanged) -> "at trigger" / "tracker only"
    table: Counter[tuple[str, str, str, str]] = Counter()
    unit_steps, on_event = WalletRunner.unit_steps, Strategy.on_event

    def classify_steps(self: WalletRunner, price: float, ts: int) -> list:
        venue = self.venue
        triggers = (venue.next_trigger_below(), venue.next_trigger_above())  # type: ignore[attr-defined]
        steps = unit_steps(self, price, ts)
        for s in steps:
            where[id(s)] = "at trigger" if s.price in triggers else "tracker only"
        return steps

    def count_reaction(self: Strategy, event):  # type: ignore[no-untyped-def]
        phase = str(self.phase)
        cmds = on_event(self, event)
        if type(event) is UnitChanged:
            table[(self.wallet, phase, where.pop(id(event), "?"), "commands" if cmds else "none")] += 1
        return cmds

    WalletRunner.unit_steps = classify_steps  # type: ignore[method-assign]
    Strategy.on_event = count_reaction  # type: ignore[method-assign]
    try:
        run_backtest(load_config(example_path("dual_wallet.yaml")), loaded=synthetic_year())
    finally:
        WalletRunner.unit_steps, Strategy.on_event = unit_steps, on_event  # type: ignore[method-assign]
    print(f"{'wallet':8} {'phase before':14} {'where':13} {'reaction':9} {'steps':>6}")
    for (wallet, phase, at, reaction), n in sorted(table.items()):
        print(f"{wallet:8} {phase:14} {at:13} {reaction:9} {n:6d}")
    skippable = sum(n for (_, _, at, r), n in table.items() if at == "tracker only" and r == "none")
    print(f"unit steps {sum(table.values())}; tracker-only steps with no commands (skippable): {skippable}")


if __name__ == "__main__":
    main()
