"""The one YAML config, validated by frozen pydantic models that forbid unknown keys.

Errors name the file and the dotted field, say what was given and what is allowed, and
suggest the nearest known key for a typo.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from hedgekit.core.errors import HedgekitError, ParameterError
from hedgekit.core.instrument import ContractType, Instrument
from hedgekit.core.unit_spec import UnitMode, UnitSpec
from hedgekit.core.unit_wallet import WINDOW

# The grid hedge's `grid` and `risk` sections are the strategy's own settings models.
from hedgekit.strategies.grid_hedge.params import GridHedgeParams, GridSettings, RiskSettings


class ConfigError(HedgekitError):
    values_redacted = True  # the values it quotes went through _shown


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_as_number(cls, data: Any) -> Any:
        """YAML reads `true`/`yes`/`on` as booleans, which pydantic would take as the number
        1 (`leverage: true` -> 1.0): a boolean is accepted only where a boolean is meant.
        (A model-level check: pydantic allows no field-level `before` check on a wallet's
        `strategy`, the field that tells the wallet kinds apart.)"""
        if not isinstance(data, dict):
            return data
        for key, value in data.items():
            if not (value is True or value is False or (
                    type(value) in (list, tuple) and any(v is True or v is False for v in value))):
                continue
            field = cls.model_fields.get(key) if isinstance(key, str) else None
            if field is not None and not _takes_bool(field.annotation):
                shown = str(value).lower() if isinstance(value, bool) else repr(value)
                raise ValueError(f"{key}={shown}: expected a number or text, not a boolean "
                                 "(YAML reads true/false/yes/no/on/off as booleans)")
        return data


def _takes_bool(annotation: Any) -> bool:
    if annotation is bool or annotation is Any:
        return True
    return any(_takes_bool(a) for a in get_args(annotation))


PositiveFloat = Annotated[float, Field(gt=0)]
DEFAULT_ATR_PERIOD = 14


class UnitConfig(_Model):
    """Unit size: `fixed` quote amount, `percent` of P0 (0.01 = 1 %), `geometric` ratio, or
    `atr`: a multiple of the ATR at anchor time."""

    mode: UnitMode = Field(default=UnitMode.FIXED, description="fixed amount, percent of P0, geometric, or multiple of ATR")
    value: PositiveFloat = Field(
        description="USD for fixed; fraction of P0 (0.01 = 1 %) for percent and geometric; ATR multiple for atr"
    )
    # None, not 14, so that a dumped config (the journal keeps one) validates again.
    atr_period: Annotated[int, Field(ge=2, le=10_000)] | None = Field(
        default=None,
        description="atr only (default 14; 2 to 10000): Wilder's ATR over this many data bars; that many bars before the first trade are warm-up",
    )

    @model_validator(mode="after")
    def _fraction(self) -> UnitConfig:
        if self.mode in (UnitMode.PERCENT, UnitMode.GEOMETRIC) and self.value >= 1:
            raise ValueError(f"value={self.value:g}: {self.mode} units are a fraction of P0 and must be < 1")
        if self.mode is not UnitMode.ATR and self.atr_period is not None:
            raise ValueError(f"atr_period is used only with mode: atr (mode is {self.mode})")
        return self

    @property
    def period(self) -> int:
        return DEFAULT_ATR_PERIOD if self.atr_period is None else self.atr_period

    def spec(self) -> UnitSpec:
        return UnitSpec(self.mode, self.value, self.period)


class WalletRiskSettings(_Model):
    """Guard rails of a unit wallet (SPEC §4a); off unless set."""

    max_drawdown_pct: Annotated[float, Field(gt=0, lt=1)] | None = Field(
        default=None,
        description=(
            "fraction (0.10 = 10 %): when the wallet's equity at a bar close is this far below its "
            "running peak (from the allocation), the position is closed at market and the wallet stops"
        ),
    )


class _WalletBase(_Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,12}$")] = Field(
        description="wallet name: letters, digits, '_' (max 12, it goes into order ids)"
    )
    allocation: PositiveFloat = Field(description="USD margin given to this wallet")
    leverage: PositiveFloat = Field(default=1.0, description="N = allocation × leverage; at most venue.max_leverage")
    unit: UnitConfig = Field(description="unit size of the grid")
    risk: WalletRiskSettings = Field(default=WalletRiskSettings(), description="guard rails (off by default)")


class LongWalletConfig(_WalletBase):
    strategy: Literal["long_wallet"]
    buy_fragment: Literal["continuous", "fixed"] = Field(default="continuous", description="buy size: (N + cycle PnL)/4 or N/4")


class HedgeWalletConfig(_WalletBase):
    strategy: Literal["hedge_wallet"]
    max_short_notional: PositiveFloat | None = Field(default=None, description="cap on the four short fragments together (USD)")


class GridHedgeConfig(_Model):
    """A futures grid hedging a spot holding (SPEC §5)."""

    strategy: Literal["grid_hedge"]
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,12}$")] = "grid"
    spot_quantity: PositiveFloat | Literal["account"] = Field(
        default=1.0, description="coins of spot held and hedged; `account`: read from the exchange at start (REAL)"
    )
    allocation: PositiveFloat | None = Field(
        default=None, description="USD margin of the futures account; default: the spot value at start"
    )
    leverage: PositiveFloat = Field(default=1.0, description="leverage of the futures account")
    grid: GridSettings = GridSettings()
    risk: RiskSettings = RiskSettings()

    def spot_coins(self) -> float:
        """The spot quantity as a number; ``account`` is resolved by the engine before (REAL,
        RECOMMENDATION with --account), so here it is an error."""
        if self.spot_quantity == "account":
            raise ParameterError(
                f"wallets ({self.name}).spot_quantity", "account",
                "reads the spot balance from the exchange, which only a REAL run (or RECOMMENDATION "
                "with --account) does; give the number of coins held on spot (e.g. 0.5) for a "
                "backtest or a PAPER run",
            )
        return float(self.spot_quantity)

    def params(self, symbol: str) -> GridHedgeParams:
        """The strategy's parameters: the sections validated with this config, not again."""
        return GridHedgeParams(
            symbol=symbol, spot_quantity=self.spot_coins(), wallet=self.name, grid=self.grid, risk=self.risk
        )


# The built-in strategies' models; hedgekit.registry widens the union when one registers.
WalletConfig = Annotated[
    LongWalletConfig | HedgeWalletConfig | GridHedgeConfig, Field(discriminator="strategy")
]
UNIT_WALLETS = (LongWalletConfig, HedgeWalletConfig)


class InstrumentConfig(_Model):
    symbol: str = Field(default="BTCUSDT", description="exchange symbol")
    tick_size: PositiveFloat = Field(default=0.1, description="price step; every price is rounded to it")
    lot_size: PositiveFloat = Field(default=0.001, description="size step; sizes round down to it")
    min_notional: Annotated[float, Field(ge=0, description="smallest order value in quote currency")] = 5.0
    contract: Literal["perp", "spot"] = Field(default="perp", description="perpetual future or spot")


class FundingConfig(_Model):
    """Funding source: a funding-rate file, a constant rate per interval, or none."""

    file: str | None = Field(default=None, description="funding-rate file, bundled:NAME, or `exchange/symbol/funding` in data.download_dir")
    rate: float | None = Field(default=None, ge=-0.01, le=0.01, description="constant rate per interval")
    interval_hours: PositiveFloat = Field(default=8.0, description="funding interval")

    @model_validator(mode="after")
    def _one_source(self) -> FundingConfig:
        if self.file is not None and self.rate is not None:
            raise ValueError("give either `file` or `rate`, not both")
        return self


class VenueConfig(_Model):
    name: str = Field(default="binanceusdm", description="ccxt exchange id (live feeds; REAL: binanceusdm or hyperliquid)")
    network: Literal["testnet", "mainnet"] = Field(
        default="testnet",
        description="REAL mode: testnet (default) or mainnet; mainnet also needs `--mainnet` and a typed confirmation",
    )
    # Binance USD-M base tier: 0.02 % maker, 0.05 % taker.
    maker_fee: Annotated[float, Field(ge=-0.01, le=0.01, description="limit fills")] = 0.0002
    taker_fee: Annotated[float, Field(ge=-0.01, le=0.01, description="market and stop fills")] = 0.0005
    slippage: Annotated[float, Field(ge=0, le=0.05, description="added against market orders (fraction)")] = 0.0
    margin_mode: Literal["cross", "isolated"] = Field(default="cross", description="margin mode of each wallet")
    maintenance_margin_rate: Annotated[float, Field(ge=0, lt=1, description="liquidation when equity <= notional × this")] = 0.005
    max_leverage: PositiveFloat = Field(default=20.0, description="ceiling of every wallet's leverage")
    trigger_order: Literal["random", "fifo", "reverse"] = Field(default="random", description="order of simultaneous triggers (random is seeded)")
    limit_fill: Literal["touch", "through"] = Field(default="touch", description="limits fill when touched, or only when traded through")
    funding: FundingConfig = Field(default=FundingConfig(), description="funding payments")
    user_stream: bool = Field(
        default=True,
        description="REAL: fills pushed by the venue's user-data websocket (REST polling stays as the fallback); false: REST polling only",
    )


class DataConfig(_Model):
    candles: str | None = Field(default=None, description="history file, or `exchange/symbol/timeframe` in download_dir; default: bundled BTCUSDT 1m")
    start: str | None = Field(default=None, description="first bar (ISO-8601 or ms), inclusive")
    end: str | None = Field(default=None, description="last bar, exclusive")
    download_dir: str | None = Field(default=None, description="folder of `hedgekit download` where `exchange/symbol/timeframe` names are looked up; default ./data")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _yaml_time(cls, value: Any) -> Any:
        """YAML reads an unquoted `2025-05-10` as a date (and `2025-05-10 12:00:00` as a
        datetime), epoch ms as an int: all are times. A naive datetime is UTC."""
        if isinstance(value, datetime):
            return value.isoformat() if value.tzinfo is not None else value.isoformat() + "Z"
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    on_spike: Literal["error", "drop", "clip"] = Field(
        default="error",
        description="a bad print (a bar far outside the market around it): refuse the file, drop the bar (a gap) or clip it to its neighbours",
    )


class BacktestConfig(_Model):
    wallets: Annotated[list[WalletConfig], Field(min_length=1, description="the wallets to run, each its own account (sub-account)")]
    instrument: InstrumentConfig = InstrumentConfig()
    venue: VenueConfig = VenueConfig()
    data: DataConfig = DataConfig()
    seed: int = Field(default=42, description="seed of the simulated exchange (simultaneous trigger order)")
    equity_every: Annotated[int, Field(ge=1, description="write equity.csv every N bars")] = 1
    trading_mode: Literal["BACKTEST", "PAPER", "RECOMMENDATION", "REAL"] | None = Field(default=None, description="default --mode of `hedgekit run`")
    alerts: list[str] = Field(
        default_factory=list, description="apprise URLs (e.g. `tgram://BOT_TOKEN/CHAT_ID`) that fills, refusals, reconnects, reconciliation diffs, guard-rail trips and errors of live runs are sent to"
    )

    @field_validator("alerts")
    @classmethod
    def _alert_urls(cls, urls: list[str]) -> list[str]:
        for i, url in enumerate(urls):
            # the URL itself is never quoted: its path carries the service's token
            if not _ALERT_URL.match(url):
                raise ValueError(f"alerts[{i}] is not an apprise URL (SCHEME://...; e.g. tgram://, discord://, json://)")
        return urls

    @field_serializer("alerts")
    def _alerts_redacted(self, urls: list[str]) -> list[str]:
        # dumps go to summary.json and the journal: only the service is kept, never its token
        return [url.split("://", 1)[0] + "://***" for url in urls]

    @model_validator(mode="after")
    def _cross_checks(self) -> BacktestConfig:
        dupes = repeated_names([w.name for w in self.wallets])
        if dupes:
            raise ValueError(f"wallet names must be unique; repeated: {', '.join(dupes)}")
        for i, w in enumerate(self.wallets):
            _size_checks(i, w, self.instrument)
            if w.leverage > self.venue.max_leverage:
                raise ValueError(
                    f"wallets[{i}].leverage={w.leverage:g} is above venue.max_leverage="
                    f"{self.venue.max_leverage:g}; lower it or raise the venue limit"
                )
            if self.instrument.contract == "spot":
                _spot_checks(i, w)
            if isinstance(w, UNIT_WALLETS) and w.unit.mode is UnitMode.FIXED and w.unit.value < self.instrument.tick_size:
                raise ValueError(
                    f"wallets[{i}].unit.value={w.unit.value:g} is smaller than the tick "
                    f"({self.instrument.tick_size:g})"
                )
        return self

    def instrument_model(self) -> Instrument:
        i = self.instrument
        return Instrument(
            symbol=i.symbol, tick_size=i.tick_size, lot_size=i.lot_size,
            min_notional=i.min_notional, contract=ContractType(i.contract), maker_fee=self.venue.maker_fee,
            taker_fee=self.venue.taker_fee,
            funding_interval_hours=self.venue.funding.interval_hours,
        )


def repeated_names(names: list[str]) -> list[str]:
    """Names that occur more than once, sorted (one pass: 20k wallets validate at once)."""
    return sorted(n for n, k in Counter(names).items() if k > 1)


# Above this a USD amount is no account's: float sums of fills and fees lose cents near 1e13,
# and 1e300 overflows to inf in the first notional. Refused, not clipped.
MAX_USD = 1e12


def _size_checks(i: int, w: Any, instrument: InstrumentConfig) -> None:
    """Amounts in range, and enough for the orders the wallet must place (SPEC §4a): a unit
    wallet splits its position N = allocation × leverage into WINDOW sells, each of which
    must meet the instrument's minimum notional (the lot is checked against the data's price
    before a run, see hedgekit.preflight)."""
    name = f"wallets[{i}] ({w.name})"
    for field in ("allocation", "spot_quantity", "max_short_notional"):
        value = vars(w).get(field)  # not getattr: a model's missing attribute is slow to miss
        if isinstance(value, int | float) and value > MAX_USD:
            raise ValueError(f"{name}.{field}={value:g} is above {MAX_USD:g}, more than any account holds "
                             "(and beyond the precision of the sums); use a real amount")
    if isinstance(w, UNIT_WALLETS) and instrument.min_notional > 0:
        n = w.allocation * w.leverage
        if n / WINDOW < instrument.min_notional:
            need = WINDOW * instrument.min_notional / w.leverage
            raise ValueError(
                f"{name}.allocation={w.allocation:g}: N = allocation × leverage = {n:g} USD is split into "
                f"{WINDOW} orders of {n / WINDOW:g} USD, below instrument.min_notional={instrument.min_notional:g}; "
                f"use an allocation of at least {need:g} (at leverage {w.leverage:g})"
            )


def _spot_checks(i: int, w: Any) -> None:
    """SPEC §6: spot has no leverage above 1 and no shorts; refused before anything runs."""
    name = f"wallets[{i}] ({w.name})"
    if w.leverage > 1:
        raise ValueError(
            f"{name}.leverage={w.leverage:g}: instrument.contract is spot, which is traded without "
            "leverage; use leverage <= 1 or contract: perp"
        )
    if isinstance(w, HedgeWalletConfig):
        raise ValueError(
            f"{name}.strategy=hedge_wallet sells short, and spot cannot be sold short "
            "(instrument.contract: spot); run it on contract: perp or use a long_wallet"
        )
    if isinstance(w, GridHedgeConfig) and w.grid.direction in ("SHORT", "BOTH"):
        raise ValueError(
            f"{name}.grid.direction={w.grid.direction} sells short, and spot cannot be sold short "
            "(instrument.contract: spot); hedge on contract: perp or use direction: LONG"
        )


_WALLET_MODELS: dict[str, type[BaseModel]] = {
    "long_wallet": LongWalletConfig, "hedge_wallet": HedgeWalletConfig, "grid_hedge": GridHedgeConfig,
}


def set_wallet_models(models: list[type[BaseModel]]) -> None:
    """Validate ``wallets[]`` against these models, told apart by their ``strategy`` literal
    (``hedgekit.registry`` calls this when a strategy registers)."""
    _WALLET_MODELS.clear()
    for m in models:
        (name,) = get_args(m.model_fields["strategy"].annotation)
        _WALLET_MODELS[name] = m
    union: Any = Union[tuple(models)] if len(models) > 1 else models[0]  # noqa: UP007
    BacktestConfig.model_fields["wallets"].annotation = list[Annotated[union, Field(discriminator="strategy")]]
    BacktestConfig.model_rebuild(force=True)


_SECRET_FIELD = re.compile(r"key|secret|password|passphrase|token|signature|alerts", re.I)
_ALERT_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")
_MAX_SHOWN = 80


def _shown(loc: tuple[Any, ...], value: Any) -> str:
    """A bad value as an error quotes it: masked when its field looks like a secret, cut when
    long (a 50 MB string is not an error message)."""
    if any(isinstance(p, str) and _SECRET_FIELD.search(p) for p in loc):
        return "*** (hidden: the field looks like a secret)"
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else f"{text[:_MAX_SHOWN]}... ({len(text):,} characters)"


def _known_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names valid at ``loc`` (for "did you mean"), best effort."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None:
            return []
        if part in fields:
            ann = fields[part].annotation
            current = _first_model(ann)
        elif part in _WALLET_MODELS:
            current = _WALLET_MODELS[part]
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def _first_model(ann: Any) -> Any:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def format_errors(err: ValidationError, source: str, model: type[BaseModel]) -> str:
    lines = [f"{source}: invalid configuration ({err.error_count()} problem(s))"]
    for e in err.errors():
        loc = tuple(e["loc"])
        path = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
        path = path or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            known = _known_fields(model, loc)
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f"; did you mean `{close[0]}`?" if close else (f"; allowed: {', '.join(known)}" if known else "")
            lines.append(f"  {path}: unknown key{hint}")
            continue
        msg = msg.removeprefix("Value error, ")
        given = e.get("input")
        shown = "" if isinstance(given, dict | list) or given is None else f" (got {_shown(loc, given)})"
        lines.append(f"  {path}: {msg}{shown}")
    return "\n".join(lines)


_GRID_TOP_KEYS = ("grid", "risk", "spot_quantity", "allocation", "leverage", "name")
_GRID_PREFIX = "wallets[0].grid_hedge."


def _from_grid_shape(data: dict) -> dict:
    """The single-grid shape of SPEC §5 (`symbol`, `trading_mode`, `grid`, `risk` at the top)
    becomes a one-wallet config; errors are reported with the user's own paths."""
    data = dict(data)
    wallet: dict[str, Any] = {"strategy": "grid_hedge"}
    for key in _GRID_TOP_KEYS:
        if key in data:
            wallet[key] = data.pop(key)
    instrument = dict(data.pop("instrument", {}) or {})
    if "symbol" in data:
        instrument["symbol"] = data.pop("symbol")
    if instrument:
        data["instrument"] = instrument
    data["wallets"] = [wallet]
    return data


def parse_config(data: Any, source: str = "<config>") -> BacktestConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level")
    grid_shape = "grid" in data and "wallets" not in data
    if grid_shape:
        data = _from_grid_shape(data)
    try:
        return BacktestConfig.model_validate(data)
    except ValidationError as err:
        text = format_errors(err, source, BacktestConfig)
        if grid_shape:
            text = text.replace(_GRID_PREFIX, "").replace("wallets[0].grid_hedge", "(grid settings)")
        raise ConfigError(text) from None


class _DuplicateKey(yaml.YAMLError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (plain YAML keeps the last one
    silently, so the first setting would be ignored without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults`: keys given beside it override the merged ones
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark.line)
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if first != key_node.start_mark.line:
                raise _DuplicateKey(f"line {key_node.start_mark.line + 1}: duplicate key `{key}` (first given on "
                                    f"line {first + 1}); YAML would keep only the last one: remove one of them")
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path) -> Any:
    """The YAML document of a config file; ConfigError naming the file for a file that cannot
    be read, is not UTF-8 text, is not YAML or repeats a key."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config ({err.strerror or err})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: byte 0x{raw[err.start]:02x} is not UTF-8 text; "
                          "save the config as UTF-8") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None


def load_config(path: str | Path) -> BacktestConfig:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    cfg = parse_config(load_yaml(p), str(p))
    return _resolve_paths(cfg, p.parent)


def _resolve_paths(cfg: BacktestConfig, base: Path) -> BacktestConfig:
    """Relative data paths in a config file are relative to the file, not the shell."""

    from hedgekit.feeds.datadir import parse_market_ref

    def fix(value: str | None) -> str | None:
        if value is None or Path(value).is_absolute() or value.startswith("bundled:"):
            return value
        if parse_market_ref(value) is not None and not (base / value).exists():
            return value  # exchange/symbol/timeframe: looked up in data.download_dir
        return str((base / value).resolve())

    data = cfg.data.model_copy(
        update={"candles": fix(cfg.data.candles), "download_dir": fix(cfg.data.download_dir)}
    )
    funding = cfg.venue.funding.model_copy(update={"file": fix(cfg.venue.funding.file)})
    venue = cfg.venue.model_copy(update={"funding": funding})
    return cfg.model_copy(update={"data": data, "venue": venue})
