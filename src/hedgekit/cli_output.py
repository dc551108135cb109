"""What the `hedgekit` commands print on stdout for a backtest, a report and a download (the
real-time commands' own printing stays in :mod:`hedgekit.cli`)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["out", "print_data_quality", "print_download", "print_summary"]

# Piped output (CI logs, `make run | tee`) gets a wide table instead of 80 truncated columns.
out = Console(width=None if sys.stdout.isatty() else 140)


def print_summary(summary: dict) -> None:
    d = summary["data"]
    table = Table(title=f"{d['start']} → {d['end']}  ({d['bars']:,} bars)")
    for col in ("wallet", "start", "end", "return %", "max DD %", "fees", "funding", "fills", "resets", "phase", "B&H %"):
        table.add_column(col, justify="right" if col != "wallet" else "left")
    rows = list(summary["wallets"].items()) + [("TOTAL", summary["total"])]
    for name, w in rows:
        table.add_row(
            name, f"{w['start_equity']:,.2f}", f"{w['end_equity']:,.2f}", f"{w['return_pct']:+.2f}",
            f"{w['max_drawdown_pct']:.2f}", f"{w['fees']:,.2f}", f"{w['funding']:,.2f}",
            str(w["fills"]), str(w["resets"]), w.get("final_phase", ""),
            f"{w['buy_and_hold_return_pct']:+.2f}",
        )
    out.print(table)


def print_data_quality(summary: dict) -> None:
    """The start checks (SPEC §4a): a red panel for bars too coarse for the unit, with the
    result under the opposite intrabar order beside the main one; a yellow one for units that
    cannot pay their fees."""
    from rich.panel import Panel

    dq = summary.get("data_quality") or {}
    coarse = [c for c in (dq.get("coarse_bars") or {}).values() if c.get("coarse")]
    if coarse:
        table = Table(title="same backtest, both intrabar orders")
        for col in ("wallet", "return %", "opposite", "max DD %", "opposite", "fills", "opposite"):
            table.add_column(col, justify="left" if col == "wallet" else "right")
        other = dq.get("opposite_intrabar") or {}
        rows = [(n, w, (other.get("wallets") or {}).get(n, {})) for n, w in summary["wallets"].items()]
        rows.append(("TOTAL", summary["total"], other.get("total") or {}))
        for name, main, opp in rows:
            table.add_row(
                name, f"{main['return_pct']:+.2f}", _pct(opp.get("return_pct"), "+.2f"),
                f"{main['max_drawdown_pct']:.2f}", _pct(opp.get("max_drawdown_pct"), ".2f"),
                str(main["fills"]), str(opp.get("fills", "–")),
            )
        text = "\n".join(escape(c["message"]) for c in coarse)
        out.print(Panel(text, title="[bold]BARS TOO COARSE FOR THE UNIT: results are optimistic[/]",
                        border_style="bold red", style="red"))
        out.print(table)
    fees = [f for f in (dq.get("unit_vs_fee") or {}).values() if not f.get("ok", True)]
    if fees:
        out.print(Panel("\n".join(escape(f["message"]) for f in fees),
                        title="[bold]UNIT SMALLER THAN ITS FEES[/]", border_style="bold yellow", style="yellow"))


def _pct(v, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def print_download(result) -> None:
    import pandas as pd

    def iso(ms: int) -> str:
        return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")

    for s in result.series:
        if s.skipped:
            out.print(f"{s.kind}: skipped ({s.skipped})", highlight=False)
            continue
        out.print(
            f"{s.kind}: {s.path} — {s.rows:,} rows {iso(s.first_ms)} → {iso(s.last_ms)} UTC, "
            f"{s.added:,} new, {s.requests} request(s)", highlight=False, soft_wrap=True,
        )
        for after, missing in s.gaps[:10]:
            out.print(f"  gap after {iso(after)}: {missing:,} bar(s) missing", highlight=False)
        if len(s.gaps) > 10:
            out.print(f"  … {len(s.gaps) - 10} more gap(s)", highlight=False)
