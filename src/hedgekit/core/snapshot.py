"""State as versioned JSON data: what a journal stores instead of pickles.

``encode`` turns a graph of hedgekit objects (strategies, the simulated venue, trackers)
into plain JSON values; ``decode`` rebuilds it. Unlike pickle, decoding never calls code
named by the data: the only classes it builds are hedgekit's own (looked up by name in
``hedgekit.*`` modules, created with ``__new__`` and filled attribute by attribute) and a
few containers. Shared objects stay shared (the venue's order books are referenced from two
places), floats round-trip exactly (JSON floats are ``repr``), and anything else — a
function, a socket, a foreign class — is refused with the path to it.

A snapshot carries two versions: ``FORMAT_VERSION`` (this encoding) and the strategy's
``SNAPSHOT_VERSION`` (the shape of its state). Either differing is refused, naming both.
"""

from __future__ import annotations

import array
import base64
import enum
import importlib
import math
import random
from collections import deque
from typing import Any

import numpy as np

from hedgekit.core.errors import HedgekitError

FORMAT_VERSION = 2  # 2: the runner no longer walks the market (engine.walker); RECOMMENDATION sink
_PACKAGE = "hedgekit."
# Modules outside hedgekit whose classes may be rebuilt: those of registered strategies.
_TRUSTED: set[str] = set()


def trust_module(module: str) -> None:
    """Let ``decode`` rebuild classes of ``module`` (a registered strategy's own module)."""
    _TRUSTED.add(module)


def _trusted(module: str) -> bool:
    return module.startswith(_PACKAGE) or module in _TRUSTED


class SnapshotError(HedgekitError, ValueError):
    """A snapshot that cannot be written or read (foreign object, other version, bad data)."""


def encode(obj: Any) -> Any:
    """JSON-ready data for ``obj`` (see the module docstring)."""
    return _Encoder().value(obj, "$")


def decode(data: Any) -> Any:
    """The object graph ``encode`` was given."""
    return _Decoder().value(data)


def snapshot_header(strategy: Any) -> dict[str, Any]:
    """What every snapshot of ``strategy`` starts with: the versions it was written with."""
    return {"format": FORMAT_VERSION, "strategy": strategy.name, "version": strategy.SNAPSHOT_VERSION}


def check_header(data: Any, strategy_cls: Any) -> None:
    """Refuse a snapshot of another strategy or written with another version."""
    if not isinstance(data, dict) or "format" not in data:
        raise SnapshotError("not a hedgekit snapshot (no format version)")
    check_version("snapshot format", data["format"], FORMAT_VERSION)
    if data.get("strategy") != strategy_cls.name:
        raise SnapshotError(f"snapshot of a {data.get('strategy')!r} strategy, not {strategy_cls.name!r}")
    check_version(f"{strategy_cls.name} state", data.get("version"), strategy_cls.SNAPSHOT_VERSION)


def check_version(what: str, found: object, expected: int) -> None:
    """Refuse a snapshot written with another version of ``what``, naming both."""
    if found != expected:
        raise SnapshotError(
            f"{what} version {found} cannot be read by this hedgekit, which writes version "
            f"{expected}: finish or flatten that run with the hedgekit that started it, or start "
            f"a new run"
        )


def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _attributes(obj: object) -> dict[str, Any]:
    out = dict(getattr(obj, "__dict__", {}))
    for klass in type(obj).__mro__:
        # A class compiled by mypyc (tools/build_compiled.py) lists its attributes in
        # __mypyc_attrs__ (it has neither __dict__ nor __slots__).
        for name in (*getattr(klass, "__slots__", ()), *getattr(klass, "__mypyc_attrs__", ())):
            if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                out[name] = getattr(obj, name)
    return out


def _ordered(items: set | frozenset) -> list:
    """Sorted when it can be, so equal states give equal snapshots (set order is per process)."""
    try:
        return sorted(items)
    except TypeError:
        return list(items)


def _float(x: float) -> Any:
    return x if math.isfinite(x) else {"$f": repr(x)}


class _Encoder:
    def __init__(self) -> None:
        self.ids: dict[int, int] = {}
        self.keep: list[object] = []  # keeps encoded objects alive so their ids stay unique

    def _ref(self, obj: object) -> int | None:
        found = self.ids.get(id(obj))
        if found is None:
            self.ids[id(obj)] = len(self.ids)
            self.keep.append(obj)
        return found

    def value(self, obj: Any, path: str) -> Any:
        if isinstance(obj, enum.Enum):  # before str: a StrEnum is a str
            cls = type(obj)
            if not _trusted(cls.__module__):
                raise SnapshotError(f"cannot snapshot {path}: foreign enum {_class_name(cls)}")
            return {"$enum": _class_name(cls), "v": obj.value}
        if obj is None:
            return None
        if isinstance(obj, bool | np.bool_):
            return bool(obj)
        if isinstance(obj, str):
            return str(obj)
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            return _float(float(obj))
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, tuple):
            return {"$tuple": [self.value(v, f"{path}[{i}]") for i, v in enumerate(obj)]}
        if isinstance(obj, frozenset):
            return {"$frozenset": [self.value(v, f"{path}{{}}") for v in _ordered(obj)]}
        ref = self._ref(obj)
        if ref is not None:
            return {"$ref": ref}
        me = self.ids[id(obj)]
        if isinstance(obj, list):
            return {"$id": me, "$list": [self.value(v, f"{path}[{i}]") for i, v in enumerate(obj)]}
        if isinstance(obj, dict):
            items = [[self.value(k, f"{path}.key"), self.value(v, f"{path}[{k!r}]")] for k, v in obj.items()]
            return {"$id": me, "$dict": items}
        if isinstance(obj, set):
            return {"$id": me, "$set": [self.value(v, f"{path}{{}}") for v in _ordered(obj)]}
        if isinstance(obj, deque):
            return {"$id": me, "$deque": [self.value(v, f"{path}[{i}]") for i, v in enumerate(obj)],
                    "maxlen": obj.maxlen}
        if isinstance(obj, array.array):
            return {"$id": me, "$array": obj.typecode, "b64": base64.b64encode(obj.tobytes()).decode()}
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                raise SnapshotError(f"cannot snapshot {path}: numpy array of objects")
            a = np.ascontiguousarray(obj)
            return {"$id": me, "$ndarray": a.dtype.str, "shape": list(a.shape),
                    "b64": base64.b64encode(a.tobytes()).decode()}
        if type(obj) is random.Random:
            version, state, gauss = obj.getstate()
            return {"$id": me, "$random": [version, list(state), gauss]}
        cls = type(obj)
        if not _trusted(cls.__module__) or callable(obj) or isinstance(obj, type):
            raise SnapshotError(f"cannot snapshot {path}: {_class_name(cls)} is not hedgekit state")
        attrs = {k: self.value(v, f"{path}.{k}") for k, v in _attributes(obj).items()}
        return {"$id": me, "$obj": _class_name(cls), "a": attrs}


class _Decoder:
    def __init__(self) -> None:
        self.objs: dict[int, Any] = {}

    def _keep(self, data: dict, obj: Any) -> Any:
        self.objs[data["$id"]] = obj
        return obj

    def value(self, data: Any) -> Any:
        if data is None or isinstance(data, bool | int | float | str):
            return data
        if isinstance(data, list):
            raise SnapshotError("bad snapshot: a bare list (lists are tagged)")
        if not isinstance(data, dict):
            raise SnapshotError(f"bad snapshot: unexpected {type(data).__name__}")
        if "$f" in data:
            return float(data["$f"])
        if "$ref" in data:
            try:
                return self.objs[data["$ref"]]
            except KeyError:
                raise SnapshotError(f"bad snapshot: reference {data['$ref']} before its object") from None
        if "$enum" in data:
            return _lookup(data["$enum"], enum.Enum)(data["v"])
        if "$tuple" in data:
            return tuple(self.value(v) for v in data["$tuple"])
        if "$frozenset" in data:
            return frozenset(self.value(v) for v in data["$frozenset"])
        if "$list" in data:
            out: list = self._keep(data, [])
            out.extend(self.value(v) for v in data["$list"])
            return out
        if "$dict" in data:
            d: dict = self._keep(data, {})
            for k, v in data["$dict"]:
                d[self.value(k)] = self.value(v)
            return d
        if "$set" in data:
            s: set = self._keep(data, set())
            s.update(self.value(v) for v in data["$set"])
            return s
        if "$deque" in data:
            q: deque = self._keep(data, deque(maxlen=data["maxlen"]))
            q.extend(self.value(v) for v in data["$deque"])
            return q
        if "$array" in data:
            a = array.array(data["$array"])
            a.frombytes(base64.b64decode(data["b64"]))
            return self._keep(data, a)
        if "$ndarray" in data:
            raw = base64.b64decode(data["b64"])
            nd = np.frombuffer(raw, dtype=np.dtype(data["$ndarray"])).reshape(data["shape"]).copy()
            return self._keep(data, nd)
        if "$random" in data:
            version, state, gauss = data["$random"]
            rng = random.Random()
            rng.setstate((version, tuple(state), gauss))
            return self._keep(data, rng)
        if "$obj" in data:
            cls = _lookup(data["$obj"], object)
            obj = self._keep(data, cls.__new__(cls))
            for k, v in data["a"].items():
                object.__setattr__(obj, k, self.value(v))
            return obj
        raise SnapshotError(f"bad snapshot: unknown tag in {sorted(data)[:3]}")


def _lookup(name: str, base: type) -> Any:
    """A hedgekit class (or a registered strategy's) by ``module:qualname``; never imports or
    returns anything else."""
    module, _, qualname = name.partition(":")
    if not _trusted(module) or not qualname:
        raise SnapshotError(f"bad snapshot: {name!r} is not a hedgekit class")
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        raise SnapshotError(f"bad snapshot: no class {name} in this hedgekit") from None
    if not (isinstance(found, type) and issubclass(found, base)) or issubclass(found, BaseException):
        raise SnapshotError(f"bad snapshot: {name} is not a state class")
    return found
