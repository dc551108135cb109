"""Cheaper construction of the frozen dataclasses made on every order event.

A frozen dataclass's generated ``__init__`` stores each field with ``object.__setattr__``
(plain assignment is what frozen forbids), which costs several times a plain store: for
the orders, events and records a backtest makes by the tens of thousands, that is a
visible share of the run. ``fast_init`` gives such a class (frozen, with ``slots``) an
``__init__`` that stores each field through its slot descriptor instead: same signature,
defaults and ``__post_init__`` call, same result, and the class stays frozen (assigning a
field afterwards still raises ``FrozenInstanceError``).
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import TypeVar

T = TypeVar("T", bound=type)


def fast_init(cls: T) -> T:
    """Replace the ``__init__`` of a frozen ``slots=True`` dataclass (see the module doc)."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"fast_init: {cls.__name__} must be a frozen dataclass with slots=True")
    ns: dict[str, object] = {}
    args: list[str] = []
    body: list[str] = []
    annotations: dict[str, object] = {}
    for f in fields(cls):
        if not f.init or f.kw_only or f.default_factory is not MISSING:
            raise TypeError(f"fast_init: {cls.__name__}.{f.name}: only plain fields are supported")
        if f.default is MISSING:
            args.append(f.name)
        else:
            ns[f"_default_{f.name}"] = f.default
            args.append(f"{f.name}=_default_{f.name}")
        ns[f"_set_{f.name}"] = cls.__dict__[f.name].__set__  # the slot's member descriptor
        body.append(f"    _set_{f.name}(self, {f.name})")
        annotations[f.name] = f.type
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    exec(f"def __init__(self, {', '.join(args)}):\n" + "\n".join(body or ["    pass"]), ns)  # noqa: S102
    init = ns["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"  # type: ignore[attr-defined]
    init.__module__ = cls.__module__
    init.__annotations__ = {**annotations, "return": None}
    cls.__init__ = init  # type: ignore[misc]
    return cls
