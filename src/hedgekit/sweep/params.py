"""``--param PATH=VALUES``: which config fields a sweep varies, and over which values.

``PATH`` is a dotted config field. In ``wallets`` the next part is a wallet's name (or its
index, or ``*`` for every wallet that has the field): ``wallets.hedge.unit.value``,
``wallets.*.leverage``, ``venue.taker_fee``.

``VALUES`` is

* a list ``0.005,0.01,0.02`` (each item read like YAML: ``2`` is an int, ``fifo`` a string);
* a range ``A:B:N``: N evenly spaced values from A to B inclusive (ints stay ints when every
  point is whole and A, B are ints);
* ``log:A:B:N``: N geometrically spaced values (A, B > 0);
* ``A:B`` / ``log:A:B`` without a count: a continuous interval, for ``--samples`` and
  ``hedgekit optimize`` (a Cartesian sweep needs the count).

Every point is applied to the config and validated by the config's own models before anything
runs; errors name the ``--param`` and the field.
"""

from __future__ import annotations

import difflib
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml
from pydantic import ValidationError

from hedgekit.config import BacktestConfig, format_errors
from hedgekit.core.errors import HedgekitError

__all__ = ["ParamError", "ParamSpec", "apply_params", "grid_points", "parse_param", "parse_params",
           "random_points", "resolve_path"]


class ParamError(HedgekitError, ValueError):
    """A ``--param`` that cannot be parsed, names no config field, or gives an invalid value."""


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One ``--param``: the path as given and either discrete ``values`` or an interval
    ``low``..``high`` (``log``: geometric) with ``count`` points (0: continuous)."""

    path: str
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    count: int = 0
    log: bool = False
    integer: bool = False  # an interval of ints (A and B written as ints)

    @property
    def is_range(self) -> bool:
        return self.low is not None

    @property
    def continuous(self) -> bool:
        return self.is_range and self.count == 0

    def points(self) -> tuple[Any, ...]:
        """The discrete values of the Cartesian sweep."""
        if not self.is_range:
            return self.values
        if self.count == 0:
            raise ParamError(
                f"--param {self.path}={self._text()}: a sweep needs a count for a range "
                f"(write {self._text()}:N for N points), or use --samples for random points"
            )
        lo, hi = float(self.low), float(self.high)  # type: ignore[arg-type]
        if self.count == 1:
            pts = np.array([lo])
        elif self.log:
            pts = np.geomspace(lo, hi, self.count)
        else:
            pts = np.linspace(lo, hi, self.count)
        if self.integer and all(float(p).is_integer() for p in pts):
            return tuple(int(p) for p in pts)
        # 12 significant digits: 0.1 + 2 * 0.05 is shown (and applied) as 0.2.
        return tuple(float(f"{p:.12g}") for p in pts)

    def sample(self, rng: np.random.Generator) -> Any:
        """One random value: a list item, a grid point, or a point of the interval."""
        if not self.is_range:
            return self.values[int(rng.integers(len(self.values)))]
        if self.count:
            pts = self.points()
            return pts[int(rng.integers(len(pts)))]
        lo, hi = float(self.low), float(self.high)  # type: ignore[arg-type]
        if self.integer:
            return int(rng.integers(int(lo), int(hi) + 1))
        v = math.exp(rng.uniform(math.log(lo), math.log(hi))) if self.log else rng.uniform(lo, hi)
        return float(f"{v:.12g}")

    def _text(self) -> str:
        return f"{'log:' if self.log else ''}{self.low:g}:{self.high:g}"


def _scalar(text: str, where: str) -> Any:
    text = text.strip()
    if not text:
        raise ParamError(f"--param {where}: empty value (write e.g. {where.split('=')[0]}=1,2,3)")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if isinstance(value, dict | list):
        return text
    return value


def _number(text: str, where: str) -> float | int:
    value = _scalar(text, where)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParamError(f"--param {where}: {text!r} is not a number (a range is A:B:N or log:A:B:N)")
    return value


def parse_param(text: str) -> ParamSpec:
    """``PATH=VALUES`` -> ``ParamSpec`` (syntax only; the path is checked by ``resolve_path``)."""
    path, sep, rhs = text.partition("=")
    path = path.strip()
    if not sep or not path:
        raise ParamError(f"--param {text!r}: expected PATH=VALUES, e.g. wallets.hedge.unit.value=0.01,0.02")
    rhs = rhs.strip()
    if ":" in rhs and "," not in rhs:
        return _parse_range(path, rhs, text)
    values = tuple(_scalar(v, text) for v in rhs.split(","))
    if len(set(map(repr, values))) != len(values):
        raise ParamError(f"--param {text}: a value is repeated")
    return ParamSpec(path, values=values)


def _parse_range(path: str, rhs: str, text: str) -> ParamSpec:
    log = rhs.startswith("log:")
    parts = rhs.removeprefix("log:").split(":")
    if len(parts) not in (2, 3):
        raise ParamError(f"--param {text}: a range is A:B:N (N points from A to B) or log:A:B:N; "
                         "A:B alone is an interval for --samples and optimize")
    lo, hi = _number(parts[0], text), _number(parts[1], text)
    count = 0
    if len(parts) == 3:
        n = _number(parts[2], text)
        if not isinstance(n, int) or n < 1:
            raise ParamError(f"--param {text}: the count N of A:B:N must be a whole number >= 1 (got {parts[2]!r})")
        count = n
    if not lo < hi and not (count == 1 and lo == hi):
        raise ParamError(f"--param {text}: a range needs A < B (got {lo:g} and {hi:g})")
    if log and lo <= 0:
        raise ParamError(f"--param {text}: a log: range needs A > 0 (got {lo:g})")
    integer = isinstance(lo, int) and isinstance(hi, int)
    return ParamSpec(path, low=lo, high=hi, count=count, log=log, integer=integer)


def parse_params(texts: list[str]) -> list[ParamSpec]:
    specs = [parse_param(t) for t in texts]
    seen: set[str] = set()
    for s in specs:
        if s.path in seen:
            raise ParamError(f"--param {s.path} is given twice; give all its values in one --param")
        seen.add(s.path)
    return specs


# -- paths ----------------------------------------------------------------------------------------


def _suggest(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    if close:
        return f"; did you mean `{close[0]}`?"
    return f"; known here: {', '.join(known)}" if known else ""


def resolve_path(data: dict, path: str) -> list[tuple[str | int, ...]]:
    """Concrete locations (tuples of keys and list indexes) in the dumped config ``data`` that
    ``path`` names; an error names the first part that matches nothing."""
    parts = path.split(".")
    found: list[tuple[str | int, ...]] = []
    _walk(data, parts, (), path, found, wildcard=False)
    return found


def _walk(node: Any, parts: list[str], loc: tuple, path: str, found: list, wildcard: bool) -> None:
    if not parts:
        found.append(loc)
        return
    head, rest = parts[0], parts[1:]
    given = path.split(".")
    shown = ".".join(given[: len(given) - len(parts)]) or "(top level)"
    if isinstance(node, list):
        names = [w.get("name") if isinstance(w, dict) else None for w in node]
        if head == "*":
            before = len(found)
            for i, item in enumerate(node):
                if isinstance(item, dict) and (not rest or rest[0] in item):
                    _walk(item, rest, (*loc, i), path, found, wildcard=True)
            if len(found) == before:
                raise ParamError(f"--param {path}: no wallet has the field `{'.'.join(rest)}`")
            return
        if head.isdigit() and int(head) < len(node):
            _walk(node[int(head)], rest, (*loc, int(head)), path, found, wildcard)
            return
        if head in names:
            _walk(node[names.index(head)], rest, (*loc, names.index(head)), path, found, wildcard)
            return
        raise ParamError(f"--param {path}: no wallet named `{head}` in {shown}"
                         f"{_suggest(head, [str(n) for n in names if n])} (or use * for every wallet)")
    if isinstance(node, dict):
        if head not in node:
            if wildcard:
                return
            raise ParamError(f"--param {path}: unknown field `{head}` in {shown}{_suggest(head, list(node))}")
        child = node[head]
        if rest and child is None:
            raise ParamError(f"--param {path}: {shown}.{head} is not set in the config, so it has no "
                             f"field `{rest[0]}`; set it in the YAML first")
        _walk(child, rest, (*loc, head), path, found, wildcard)
        return
    raise ParamError(f"--param {path}: {shown} is a value ({node!r}), it has no field `{head}`")


def _set(data: Any, loc: tuple, value: Any) -> None:
    for key in loc[:-1]:
        data = data[key]
    if isinstance(data[loc[-1]], dict | list):
        raise ParamError(f"--param {'.'.join(map(str, loc))}: that is a group of settings, not one value; "
                         "name one of its fields")
    data[loc[-1]] = value


def _copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_copy(v) for v in data]
    return data


def _fmt(v: Any) -> str:
    return format(v, "g") if isinstance(v, float) else str(v)


def apply_params(cfg: BacktestConfig, point: dict[str, Any], base: dict | None = None) -> BacktestConfig:
    """``cfg`` with each ``path -> value`` of ``point`` set and the whole config validated again.
    ``base`` is ``cfg`` dumped (``model_dump(mode="json")``), passed when applying many points."""
    data = _copy(base if base is not None else cfg.model_dump(mode="json"))
    for path, value in point.items():
        for loc in resolve_path(data, path):
            _set(data, loc, value)
    try:
        return BacktestConfig.model_validate(data)
    except ValidationError as err:
        given = " ".join(f"{p}={_fmt(v)}" for p, v in point.items())
        text = format_errors(err, f"--param {given}", BacktestConfig)
        # pydantic says wallets[0].x; the user wrote wallets.<name>.x.
        for i, w in enumerate(data.get("wallets") or []):
            name = f"wallets.{w.get('name', i)}"
            text = text.replace(f"wallets[{i}].{w.get('strategy')}", name).replace(f"wallets[{i}]", name)
        raise ParamError(text) from None


def grid_points(specs: list[ParamSpec]) -> list[dict[str, Any]]:
    """The Cartesian product of every spec's points, first param varying slowest."""
    axes = [s.points() for s in specs]
    return [dict(zip([s.path for s in specs], combo, strict=True)) for combo in itertools.product(*axes)]


def random_points(specs: list[ParamSpec], n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [{s.path: s.sample(rng) for s in specs} for _ in range(n)]


def check_points(cfg: BacktestConfig, specs: list[ParamSpec], points: list[dict[str, Any]]) -> list[BacktestConfig]:
    """Every point applied and validated up front (paths first, so a typo is reported once)."""
    base = cfg.model_dump(mode="json")
    for s in specs:
        resolve_path(base, s.path)
    return [apply_params(cfg, p, base) for p in points]
