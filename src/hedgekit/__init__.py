"""hedgekit: automated hedging strategies on crypto perpetual futures and spot."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec

__version__ = "0.1.0"

# The backtest hot path may be compiled with mypyc (tools/build_compiled.py, run by the
# Makefile): extension modules next to their sources and a manifest of the sources they were
# built from. A stale build would silently run old code, so when any of those sources changed
# since, or HEDGEKIT_PURE=1 is set, every compiled module is loaded from its .py instead (all
# of them: compiled modules of one group call each other natively).
_MANIFEST = "_compiled.json"
_pure_reason: str | None = "not built"


def compiled() -> bool:
    """True when the compiled (mypyc) hot path is in use, False when running pure Python."""
    return _pure_reason is None


def build_mode() -> str:
    """``"compiled (mypyc)"`` or ``"pure Python (why)"``, for logs and benchmark output."""
    return "compiled (mypyc)" if _pure_reason is None else f"pure Python ({_pure_reason})"


def _check_build(pkg_dir: str, manifest_name: str = _MANIFEST) -> tuple[str | None, list[str]]:
    """(why the build cannot be used or None, the modules it holds)."""
    import json
    import os

    try:
        with open(os.path.join(pkg_dir, manifest_name), "rb") as f:
            modules: dict[str, str] = json.load(f)["modules"]
        if not isinstance(modules, dict):
            raise TypeError(manifest_name)
    except FileNotFoundError:
        # Extension modules without their manifest cannot be checked: never use them.
        if not any(n.startswith("_hot__mypyc") for n in os.listdir(pkg_dir)):
            return "not built", []
        return "stale: the build has no manifest", _extension_modules(pkg_dir)
    except (OSError, ValueError, KeyError, TypeError):
        return "stale: unreadable manifest", _extension_modules(pkg_dir)
    if os.environ.get("HEDGEKIT_PURE") == "1":
        return "HEDGEKIT_PURE=1", list(modules)
    import hashlib

    root = os.path.dirname(pkg_dir)
    for name, digest in modules.items():
        try:
            with open(os.path.join(root, *name.split(".")) + ".py", "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() != digest:
                    return f"stale: {name} changed since it was compiled", list(modules)
        except OSError:
            return f"stale: {name} is missing", list(modules)
    return None, list(modules)


def _extension_modules(pkg_dir: str) -> list[str]:
    """Every hedgekit module that has an extension module beside its source."""
    import os
    from importlib.machinery import EXTENSION_SUFFIXES

    root = os.path.dirname(pkg_dir)
    found = []
    for folder, _, files in os.walk(pkg_dir):
        for f in files:
            for suffix in EXTENSION_SUFFIXES:
                if f.endswith(suffix) and os.path.exists(os.path.join(folder, f.removesuffix(suffix) + ".py")):
                    rel = os.path.relpath(os.path.join(folder, f.removesuffix(suffix)), root)
                    found.append(rel.replace(os.sep, "."))
    return found


class _SourceFinder:
    """Finds the listed modules' .py sources, ahead of the extension modules beside them."""

    def __init__(self, names: list[str]) -> None:
        self.names = frozenset(names)

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if fullname not in self.names:
            return None
        import importlib.util
        import os

        src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        return importlib.util.spec_from_file_location(
            fullname, os.path.join(src, *fullname.split(".")) + ".py"
        )


def _use_pure(names: list[str]) -> None:
    import sys

    if not any(isinstance(f, _SourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFinder(names))


def _init() -> None:
    global _pure_reason
    import os

    _pure_reason, names = _check_build(os.path.dirname(os.path.abspath(__file__)))
    if _pure_reason is None or not names:
        return
    _use_pure(names)
    if _pure_reason.startswith("stale"):
        import warnings

        warnings.warn(
            f"compiled hot path is stale ({_pure_reason.removeprefix('stale: ')}), running pure "
            "Python; `make compile` rebuilds",
            RuntimeWarning,
            stacklevel=3,
        )


_init()
