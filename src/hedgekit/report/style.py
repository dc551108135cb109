"""How the report draws things, shared by report.html and the PNGs: wallet, phase and order-kind
colours and markers."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BH_COLOR",
    "KIND_STYLES",
    "PHASE_COLORS",
    "PRICE_COLOR",
    "TOTAL_COLOR",
    "WALLET_PALETTE",
    "KindStyle",
    "kind_style",
    "phase_color",
    "phase_order",
    "wallet_colors",
]

WALLET_PALETTE = ("#2563eb", "#ea580c", "#059669", "#9333ea", "#db2777", "#0891b2", "#ca8a04", "#4b5563")
TOTAL_COLOR = "#111827"
PRICE_COLOR = "#64748b"
BH_COLOR = "#94a3b8"


@dataclass(frozen=True, slots=True)
class KindStyle:
    label: str
    color: str
    symbol: str  # plotly marker symbol
    mpl_marker: str  # matplotlib marker


KIND_STYLES: dict[str, KindStyle] = {
    "market_buy": KindStyle("market buy (entry)", "#15803d", "star", "*"),
    "market_buy_full": KindStyle("market buy full (re-entry)", "#0f766e", "star-diamond", "D"),
    "stop_entry_buy": KindStyle("stop entry buy", "#22c55e", "triangle-up", "^"),
    "stop_loss": KindStyle("stop loss (sell)", "#dc2626", "triangle-down", "v"),
    "stop_loss_full": KindStyle("stop loss full (exit long)", "#7f1d1d", "x", "X"),
    "stop_entry_short": KindStyle("stop entry short", "#f97316", "triangle-down-open", "1"),
    "stop_loss_cover": KindStyle("stop loss cover (buy)", "#0284c7", "triangle-up-open", "2"),
    "grid_sell": KindStyle("grid sell", "#c026d3", "triangle-left", "<"),
    "grid_buy": KindStyle("grid buy", "#0d9488", "triangle-right", ">"),
    "hedge_stop_loss": KindStyle("hedge stop loss", "#000000", "x-thin-open", "x"),
    "hedge_take_profit": KindStyle("hedge take profit", "#eab308", "circle", "o"),
    "flatten": KindStyle("flatten", "#6b7280", "square", "s"),
    "protective_close": KindStyle("protective close (stop refused)", "#991b1b", "square-x", "s"),
    "orphan_close": KindStyle("orphan close (recovered fill)", "#9f1239", "square-x-open", "s"),
    "liquidation": KindStyle("liquidation", "#000000", "hexagram", "h"),
}
_EXTRA_KIND_COLORS = ("#7c3aed", "#be123c", "#65a30d", "#0e7490", "#a16207")

PHASE_COLORS = {
    "STARTING": "#cbd5e1",
    "ADVANCE": "#16a34a",
    "RETRACEMENT": "#f59e0b",
    "DECLINE": "#dc2626",
    "RECOVER": "#3b82f6",
    "RECOVERY": "#3b82f6",
    "RESET": "#7c3aed",
    "ACTIVE": "#0d9488",
    "STOPPED": "#475569",
}
_PHASE_ORDER = list(PHASE_COLORS)


def kind_style(kind: str) -> KindStyle:
    """Marker style of an order kind; unknown kinds get a stable colour from a spare palette."""
    if kind in KIND_STYLES:
        return KIND_STYLES[kind]
    color = _EXTRA_KIND_COLORS[sum(map(ord, kind)) % len(_EXTRA_KIND_COLORS)]
    return KindStyle(kind.replace("_", " "), color, "circle-open", "o")


def phase_color(phase: str) -> str:
    return PHASE_COLORS.get(phase, "#e5e7eb")


def phase_order(phases) -> list[str]:
    """Distinct phases in lifecycle order (known ones first), for legends and tables."""
    return sorted(dict.fromkeys(phases),
                  key=lambda p: _PHASE_ORDER.index(p) if p in _PHASE_ORDER else len(_PHASE_ORDER))


def wallet_colors(names: list[str]) -> dict[str, str]:
    """One colour per wallet, in config order, the same in every chart and in the PNGs."""
    return {n: WALLET_PALETTE[i % len(WALLET_PALETTE)] for i, n in enumerate(names)}
