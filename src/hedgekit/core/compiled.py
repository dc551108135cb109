"""The rules of the optional compiled build (tools/build_compiled.py, mypyc), in one place.

mypyc makes the classes of a compiled module native classes. Where that changes behaviour, the
class says so with ``@mypyc_attr(...)`` (a no-op in pure Python):

* ``allow_interpreted_subclasses=True``: a plain-Python class may derive from it (tests,
  plugins, strategies). It also keeps ``cls.__new__(cls)`` without ``__init__`` working for
  pickle and snapshots while ``cls(...)`` runs ``__init__`` (``serializable=True`` does not: in
  mypyc 2.4 its ``cls(...)`` skips ``__init__``).
* ``native_class=False``: stays a plain class. For a frozen dataclass that is pickled (Ray) or
  snapshotted (a frozen native one cannot be rebuilt), or whose ``__post_init__`` must name a
  bad field before a native type check refuses the value. Its compiled methods then refuse
  instances of subclasses: do not subclass it.
* A plain subclass's class-body value for a base's plain attribute does not reach compiled
  code, which reads the base's native slot: what subclasses override is a ``ClassVar`` (see
  ``core.strategy.Strategy``).

* A module constant read on the hot path is ``Final`` (``SELL: Final = OrderKind.STOP_LOSS``):
  mypyc then reads it from a C static; otherwise every use is a lookup in the module's dict
  (about 10 % of a sweep trial's instructions when the enum aliases were plain globals).

Modules import ``mypyc_attr`` from here (strategies import only ``hedgekit.core``).
"""

from mypy_extensions import mypyc_attr

__all__ = ["mypyc_attr"]
