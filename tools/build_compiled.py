"""Compile the backtest hot path with mypyc, in place (optional: pure Python always works).

Run by the Makefile after the editable install (``make compile`` reruns it). The extension
modules land next to their sources under ``src/`` (gitignored), with a manifest
(``src/hedgekit/_compiled.json``: module -> sha256 of the source it was built from).
``import hedgekit`` checks the manifest and falls back to the pure sources, all of them, when
any of those sources changed since (a stale build must never shadow an edit) or when
``HEDGEKIT_PURE=1`` is set.

If compiling fails (no C compiler, no Python headers, no mypyc), one warning is printed, the
partial build is removed and the exit status is still 0: the tool simply runs pure.
``--pure`` only removes a build.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PKG = SRC / "hedgekit"
MANIFEST = PKG / "_compiled.json"
GROUP = "hedgekit._hot"  # the shared library: src/hedgekit/_hot__mypyc.*.so

# The modules the fast path spends its time in (cProfile of the dual-wallet coin-year), and
# the value modules they call most; each measured to pay. Left out, measured:
# core.events/commands/records (slower: interpreted strategies read compiled attributes more
# slowly). The unit wallets and their
# base classes are in: about 12 % more on the fast path together (the bases alone ~4 %); their
# source stays the plain Python it was, and subclasses may be plain Python (see Strategy). The
# grid hedge stays interpreted (numpy/pydantic-bound, not in the unit wallets' hot loop).
# core.rounding and core.instrument are in: Instrument's rounding (a native class, pickled
# through its __reduce__) and Position's are called tens of thousands of times a trial
# (callgrind, 4 sweep trials: -6.6 % instructions for core.instrument).
MODULES = [
    "hedgekit/venues/sim.py",
    "hedgekit/venues/sim_margin.py",
    "hedgekit/venues/sim_faults.py",
    "hedgekit/engine/runner.py",
    "hedgekit/engine/walker.py",
    "hedgekit/core/units.py",
    "hedgekit/core/rounding.py",
    "hedgekit/core/instrument.py",
    "hedgekit/core/position.py",
    "hedgekit/core/orders.py",
    "hedgekit/engine/backtest.py",
    "hedgekit/core/strategy.py",
    "hedgekit/core/unit_wallet.py",
    "hedgekit/strategies/long_wallet.py",
    "hedgekit/strategies/hedge_wallet.py",
]


def module_name(rel: str) -> str:
    return rel.removesuffix(".py").replace("/", ".")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def remove_build() -> None:
    """Every extension module of ours under src/hedgekit, and the manifest."""
    MANIFEST.unlink(missing_ok=True)
    for so in PKG.rglob("*.so"):
        so.unlink()


_SETUP = """
import sys
from setuptools import setup
from mypyc.build import mypycify
setup(name="hedgekit-hot", ext_modules=mypycify(sys.argv.pop(1).split(","), group_name={group!r},
      opt_level="3", debug_level="0"), script_args=["build_ext", "--inplace", "--build-temp", sys.argv.pop(1)])
"""


def build(verbose: bool) -> bool:
    remove_build()  # never leave an old build beside a new one
    sources = {module_name(m): sha256(SRC / m) for m in MODULES}
    with tempfile.TemporaryDirectory(prefix="hedgekit-mypyc-") as tmp:
        env = {**os.environ, "MYPYPATH": str(SRC), "MYPY_CACHE_DIR": str(Path(tmp) / "mypy_cache")}
        cmd = [sys.executable, "-c", _SETUP.format(group=GROUP), ",".join(MODULES), tmp]
        proc = subprocess.run(cmd, cwd=SRC, env=env, capture_output=not verbose, text=True)
        # The sources must still be those that were compiled (an editor may have saved meanwhile).
        if proc.returncode != 0 or any(sha256(SRC / m) != sources[module_name(m)] for m in MODULES):
            if not verbose and proc.returncode != 0:
                tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
                print("\n".join("    " + line for line in tail), file=sys.stderr)
            remove_build()
            shutil.rmtree(SRC / "build", ignore_errors=True)
            return False
    shutil.rmtree(SRC / "build", ignore_errors=True)
    MANIFEST.write_text(json.dumps({"group": GROUP, "modules": sources}, indent=1) + "\n")
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pure", action="store_true", help="only remove a compiled build")
    ap.add_argument("--list", action="store_true", help="print the compiled modules' source paths (for make)")
    ap.add_argument("-v", "--verbose", action="store_true", help="show mypyc's and the compiler's output")
    args = ap.parse_args()
    if args.list:
        print(" ".join(str((SRC / m).relative_to(ROOT)) for m in MODULES))
        return 0
    if args.pure:
        remove_build()
        print("hedgekit: compiled hot path removed, running pure Python")
        return 0
    t0 = time.perf_counter()
    if build(args.verbose):
        print(f"hedgekit: compiled hot path built with mypyc in {time.perf_counter() - t0:.0f} s "
              f"({len(MODULES)} modules)")
    else:
        print("hedgekit: WARNING: could not compile the hot path with mypyc (see above); "
              "running pure Python, which is correct but slower", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
