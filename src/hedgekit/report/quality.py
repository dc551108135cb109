"""summary.json's ``data_quality`` block: the start checks and the opposite-intrabar result."""

from __future__ import annotations

import numpy as np

from hedgekit.engine.backtest import EngineRun
from hedgekit.engine.checks import StartChecks
from hedgekit.report.metrics import max_drawdown

OPPOSITE_PATH = ("open -> high -> low -> close for a bar that closes up, "
                 "open -> low -> high -> close otherwise (the main run walks the other way)")


def headline(run: EngineRun) -> dict:
    """Return, max drawdown and fills per wallet and in total, as the main summary has them."""
    wallets = {}
    start_total, total = 0.0, np.zeros(len(run.bars))
    for w in run.wallets:
        start = float(w.venue.config.initial_cash)
        start_total += start
        total += w.equity
        wallets[w.name] = {
            "return_pct": round((float(w.equity[-1]) / start - 1.0) * 100.0, 4),
            "max_drawdown_pct": round(max_drawdown(np.concatenate([[start], w.equity])) * 100.0, 4),
            "fills": len(w.venue.fills),
        }
    out = {
        "wallets": wallets,
        "total": {
            "return_pct": round((float(total[-1]) / start_total - 1.0) * 100.0, 4),
            "max_drawdown_pct": round(max_drawdown(np.concatenate([[start_total], total])) * 100.0, 4),
            "fills": sum(w["fills"] for w in wallets.values()),
        },
    }
    return out


def data_quality(checks: StartChecks, opposite: EngineRun | None) -> dict:
    return {
        "coarse_bars": {c.wallet: c.as_dict() for c in checks.coarse},
        "unit_vs_fee": {f.wallet: f.as_dict() for f in checks.fees},
        "opposite_intrabar": None if opposite is None else {"path": OPPOSITE_PATH, **headline(opposite)},
        "warnings": checks.warnings,
    }


__all__ = ["OPPOSITE_PATH", "data_quality", "headline"]
