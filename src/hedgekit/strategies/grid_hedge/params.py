"""The grid hedge's settings: one frozen pydantic model (``GridHedgeParams`` with its ``grid``
and ``risk`` sections), validated once.

The config file's ``grid:`` and ``risk:`` sections are ``GridSettings`` and ``RiskSettings``
(``hedgekit.config`` uses these very classes), and ``GridHedgeParams`` adds what the wallet
knows (symbol, spot quantity, name). Validated inside a config, an error carries the config's
own path (``wallets[0].grid_hedge.grid.num_levels``); built directly, it is a
``ParameterError`` named ``grid.num_levels``.
"""

from __future__ import annotations

import difflib
import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from hedgekit.core import ParameterError

__all__ = ["GridDirection", "GridHedgeParams", "GridSettings", "RiskSettings"]


class GridDirection(StrEnum):
    SHORT = "SHORT"  # sell rungs above the price: hedges a spot long
    LONG = "LONG"  # buy rungs below the price
    BOTH = "BOTH"


class _Settings(BaseModel):
    """Frozen, no unknown keys, no NaN or infinity. (No custom ``__init__``: pydantic would
    call it for nested sections too, and the config's errors would lose their paths.)"""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def parameter_error(err: ValidationError) -> ParameterError:
    """The first problem of ``err`` as a ``ParameterError`` named by its dotted path."""
    first = err.errors()[0]
    path = ".".join(str(p) for p in first["loc"])
    return ParameterError(path, first.get("input"), first["msg"].removeprefix("Value error, "))


def _check(ok: bool, problem: str) -> None:
    if not ok:
        raise ValueError(problem)


class GridSettings(_Settings):
    volatility: float | None = Field(default=None, description="daily σ (0.02 = 2 %); omit to estimate from data")
    num_levels: int = Field(default=5, description="rungs per side, 1 to 100")
    direction: Literal["SHORT", "LONG", "BOTH"] = Field(default="SHORT", description="SHORT hedges a spot long")
    spacing_pct: float | None = Field(default=None, description="Δ = price × spacing_pct instead of price × σ / 2")
    min_price_distance: float = Field(default=0.0, description="smallest Δ in price")
    volatility_lookback_days: int = Field(default=30, description="days of daily returns for σ")
    rebalance_interval_seconds: float = Field(default=60.0, description="re-estimate σ and re-centre the grid this often")

    @field_validator("volatility")
    @classmethod
    def _volatility(cls, v: float | None) -> float | None:
        if v is not None:
            _check(v > 0, "must be a positive daily volatility (0.02 = 2 % a day), or omitted to estimate it from data")
            _check(v < 1, "must be a fraction below 1 (0.02 = 2 % a day)")
        return v

    @field_validator("num_levels")
    @classmethod
    def _num_levels(cls, v: int) -> int:
        _check(1 <= v <= 100, "must be a whole number of levels between 1 and 100")
        return v

    @field_validator("spacing_pct")
    @classmethod
    def _spacing_pct(cls, v: float | None) -> float | None:
        _check(v is None or 0 < v < 1, "must be a fraction of the price in (0, 1), e.g. 0.01")
        return v

    @field_validator("min_price_distance")
    @classmethod
    def _min_price_distance(cls, v: float) -> float:
        _check(v >= 0, "must be a price distance >= 0")
        return v

    @field_validator("volatility_lookback_days")
    @classmethod
    def _lookback(cls, v: int) -> int:
        _check(v >= 2, "must be a whole number of days >= 2")
        return v

    @field_validator("rebalance_interval_seconds")
    @classmethod
    def _rebalance(cls, v: float) -> float:
        _check(v > 0, "must be > 0 seconds")
        return v


class RiskSettings(_Settings):
    stop_loss_pct: float | None = Field(default=None, description="default 2σ (or 95 % VaR)")
    take_profit_pct: float | None = Field(default=None, description="default 1.5 × stop loss")
    max_hedge_ratio: float = Field(default=1.0, description="the hedge never exceeds spot × this")
    max_hedge_ratio_limit: float = Field(default=1.0, description="ceiling of max_hedge_ratio")
    hedge_ratio_band: tuple[float, float] = Field(default=(0.0, 1.0), description="a warning is logged outside it")
    max_size_pct: float = Field(default=0.2, description="risk_size = portfolio × min(this, target_vol/σ)")
    target_vol: float = Field(default=0.01, description="see max_size_pct")
    portfolio_value: float | None = Field(default=None, description="default: spot value at start")
    rearm_after_seconds: float | None = Field(default=None, description="re-lay the grid this long after a SL/TP; null = stay stopped")
    funding_threshold: float | None = Field(default=None, description="|last settled funding rate| above which new rungs are scaled")
    funding_size_factor: float = Field(default=1.0, description="rung size factor beyond the funding threshold")

    @field_validator("stop_loss_pct", "take_profit_pct")
    @classmethod
    def _fraction_of_entry(cls, v: float | None) -> float | None:
        if v is not None:
            _check(v > 0, "must be > 0, a fraction of the entry price (0.04 = 4 %)")
            _check(v < 1, "must be a fraction below 1 (0.04 = 4 %)")
        return v

    @field_validator("max_hedge_ratio")
    @classmethod
    def _ratio(cls, v: float) -> float:
        _check(v > 0, "must be > 0 (1.0 = hedge the whole spot)")
        return v

    @field_validator("max_hedge_ratio_limit")
    @classmethod
    def _limit(cls, v: float) -> float:
        _check(v > 0, "must be > 0")
        return v

    @field_validator("hedge_ratio_band")
    @classmethod
    def _band(cls, v: tuple[float, float]) -> tuple[float, float]:
        _check(0 <= v[0] <= v[1], f"must be two numbers [low, high] with 0 <= low <= high, not [{v[0]:g}, {v[1]:g}]")
        return v

    @field_validator("max_size_pct")
    @classmethod
    def _max_size(cls, v: float) -> float:
        _check(0 < v <= 1, "must be a fraction in (0, 1], e.g. 0.2")
        return v

    @field_validator("target_vol")
    @classmethod
    def _target_vol(cls, v: float) -> float:
        _check(v > 0, "must be a positive fraction, e.g. 0.01")
        return v

    @field_validator("portfolio_value")
    @classmethod
    def _portfolio(cls, v: float | None) -> float | None:
        _check(v is None or v > 0, "must be a positive amount, or omitted")
        return v

    @field_validator("rearm_after_seconds")
    @classmethod
    def _rearm(cls, v: float | None) -> float | None:
        _check(v is None or v > 0, "must be > 0 seconds, or omitted to stay stopped")
        return v

    @field_validator("funding_threshold")
    @classmethod
    def _funding_threshold(cls, v: float | None) -> float | None:
        _check(v is None or v >= 0, "must be a funding rate >= 0 (0.0001 = 1 bp)")
        return v

    @field_validator("funding_size_factor")
    @classmethod
    def _funding_factor(cls, v: float) -> float:
        _check(v > 0, "must be > 0 (0.5 halves the rungs)")
        return v

    @model_validator(mode="after")
    def _ratio_within_limit(self) -> RiskSettings:
        if self.max_hedge_ratio > self.max_hedge_ratio_limit:
            # Raised at the field (not the section), so the error names risk.max_hedge_ratio.
            problem = PydanticCustomError(
                "value_error",
                "must be <= risk.max_hedge_ratio_limit ({limit}): a hedge larger than the spot holding "
                "is a net position of its own; lower it, or raise the limit on purpose",
                {"limit": f"{self.max_hedge_ratio_limit:g}"},
            )
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [InitErrorDetails(type=problem, loc=("max_hedge_ratio",), input=self.max_hedge_ratio)],
            )
        return self


_WALLET_NAME = re.compile(r"[A-Za-z0-9_]+")


class GridHedgeParams(_Settings):
    """Everything one grid hedge needs. Fractions are fractions (0.04 = 4 %), durations seconds.
    ``GridHedgeParams.of(symbol=…, spot_quantity=…, volatility=0.02, …)`` takes the settings flat."""

    symbol: str
    spot_quantity: float
    wallet: str = "grid"
    grid: GridSettings = GridSettings()
    risk: RiskSettings = RiskSettings()

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, v: str) -> str:
        _check(bool(v.strip()), "must be a non-empty symbol such as 'BTCUSDT'")
        return v

    @field_validator("spot_quantity")
    @classmethod
    def _spot(cls, v: float) -> float:
        _check(v > 0, "must be a positive quantity of coins to hedge")
        return v

    @field_validator("wallet")
    @classmethod
    def _wallet(cls, v: str) -> str:
        _check(_WALLET_NAME.fullmatch(v) is not None, "use letters, digits and '_' only (it goes into order ids)")
        return v

    @property
    def direction(self) -> GridDirection:
        return GridDirection(self.grid.direction)

    @classmethod
    def of(cls, *, symbol: str, spot_quantity: float, wallet: str = "grid", **settings: Any) -> GridHedgeParams:
        """The settings of both sections given flat (``num_levels=5, stop_loss_pct=0.04``); an
        unknown name is refused with the nearest known one. ``direction`` may be any case. A bad
        value raises a ``ParameterError`` named by its path (``grid.num_levels``)."""
        grid: dict[str, Any] = {}
        risk: dict[str, Any] = {}
        for key, value in settings.items():
            if key in GridSettings.model_fields:
                grid[key] = value
            elif key in RiskSettings.model_fields:
                risk[key] = value
            else:
                known = sorted([*GridSettings.model_fields, *RiskSettings.model_fields])
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
                section = "grid" if close and close[0] in GridSettings.model_fields else "risk"
                raise ParameterError(f"{section}.{key}", value, f"unknown setting{hint}")
        if isinstance(grid.get("direction"), str):
            grid["direction"] = str(grid["direction"]).strip().upper()
        data = {"symbol": symbol, "spot_quantity": spot_quantity, "wallet": wallet, "grid": grid, "risk": risk}
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise parameter_error(err) from None

