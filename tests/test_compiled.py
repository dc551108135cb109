"""The optional mypyc build of the hot path (tools/build_compiled.py): it gives exactly the pure
Python results, and a build older than its sources is never used."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hedgekit

SRC = Path(hedgekit.__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "typhonun_DcaTpStrategy"
REAL = DATA / "BTC_USDT_USDT-5m-futures.feather"

# A child run: the dual-wallet example over real BTC 5m bars (5 weeks), written out.
_RUN = """
import sys
from loguru import logger
logger.remove()
import hedgekit
from hedgekit.cli import example_path
from hedgekit.config import load_config
from hedgekit.engine.session import run_backtest
cfg = load_config(example_path("dual_wallet.yaml"))
mode = sys.argv[3] if len(sys.argv) > 3 else "fast"
run_backtest(cfg, data=sys.argv[1], mode=mode).write(sys.argv[2])
print(hedgekit.build_mode())
"""

# Reports how the package loaded: its mode and where the simulator came from.
_PROBE = """
import warnings
warnings.simplefilter("always")
import hedgekit
import hedgekit.venues.sim as sim
print(hedgekit.compiled(), hedgekit.build_mode(), sim.__file__, sep="\\n")
"""


def _env(pythonpath: Path, pure: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HEDGEKIT_PURE"}
    env["PYTHONPATH"] = str(pythonpath)
    if pure:
        env["HEDGEKIT_PURE"] = "1"
    return env


def _run(code: str, *args: str, pythonpath: Path = SRC, pure: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], env=_env(pythonpath, pure),
                          capture_output=True, text=True, timeout=600)


def _has_build(src: Path = SRC) -> bool:
    return (src / "hedgekit" / "_compiled.json").is_file()


def _copy_package(tmp_path: Path) -> Path:
    """A copy of the package (with its build, if any) to edit without touching the real one."""
    shutil.copytree(SRC / "hedgekit", tmp_path / "hedgekit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


@pytest.mark.slow
@pytest.mark.skipif(not REAL.is_file(), reason="../shared/data is not beside the repo")
def test_compiled_and_pure_give_identical_results_on_real_data(tmp_path):
    compiled = _run(_RUN, str(REAL), str(tmp_path / "compiled"))
    assert compiled.returncode == 0, compiled.stderr
    if not compiled.stdout.startswith("compiled"):
        pytest.skip(f"no usable compiled build ({compiled.stdout.strip()}): `make compile` builds one")
    pure = _run(_RUN, str(REAL), str(tmp_path / "pure"), pure=True)
    assert pure.returncode == 0, pure.stderr
    assert pure.stdout.startswith("pure Python (HEDGEKIT_PURE=1)")
    names = sorted(p.name for p in (tmp_path / "pure").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "compiled").iterdir())
    assert (tmp_path / "pure" / "fills.csv").read_bytes().count(b"\n") > 20, "the run must trade"
    for name in names:
        assert (tmp_path / "compiled" / name).read_bytes() == (tmp_path / "pure" / name).read_bytes(), name


@pytest.mark.slow
@pytest.mark.skipif(not REAL.is_file(), reason="../shared/data is not beside the repo")
def test_the_compiled_fast_path_trades_exactly_as_the_pure_reference_loop(tmp_path):
    """The oracle stays independent of the compiler: the per-bar reference loop run as plain
    Python writes the same fills and orders as the compiled event-skipping fast path."""
    fast = _run(_RUN, str(REAL), str(tmp_path / "fast"))
    assert fast.returncode == 0, fast.stderr
    if not fast.stdout.startswith("compiled"):
        pytest.skip(f"no usable compiled build ({fast.stdout.strip()}): `make compile` builds one")
    ref = _run(_RUN, str(REAL), str(tmp_path / "reference"), "reference", pure=True)
    assert ref.returncode == 0, ref.stderr
    for name in ("fills.csv", "orders.csv"):
        assert (tmp_path / "fast" / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name


def test_a_source_edited_after_the_build_runs_pure_and_says_so(tmp_path):
    root = _copy_package(tmp_path)
    manifest = root / "hedgekit" / "_compiled.json"
    if not manifest.is_file():  # no build here: a manifest of the current sources stands in
        mods = ["hedgekit.venues.sim", "hedgekit.core.units"]
        digests = {m: hashlib.sha256((root / (m.replace(".", "/") + ".py")).read_bytes()).hexdigest()
                   for m in mods}
        manifest.write_text(json.dumps({"modules": digests}))
    sim = root / "hedgekit" / "venues" / "sim.py"
    sim.write_text(sim.read_text() + "\n# edited after the build\n")

    out = _run(_PROBE, pythonpath=root)

    assert out.returncode == 0, out.stderr
    flag, mode, sim_file = out.stdout.splitlines()
    assert flag == "False"
    assert mode == "pure Python (stale: hedgekit.venues.sim changed since it was compiled)"
    assert sim_file == str(sim)  # the edited source, not the extension module beside it
    assert out.stderr.count("compiled hot path is stale") == 1
    assert "`make compile` rebuilds" in out.stderr


def test_hedgekit_pure_loads_every_compiled_module_from_source(tmp_path):
    root = _copy_package(tmp_path)
    if not _has_build(root):
        pytest.skip("no compiled build (make compile builds one)")
    modules = json.loads((root / "hedgekit" / "_compiled.json").read_text())["modules"]
    probe = "import importlib, hedgekit\n" + "".join(
        f"print(importlib.import_module({m!r}).__file__)\n" for m in modules) + "print(hedgekit.compiled())"

    pure = _run(probe, pythonpath=root, pure=True)
    built = _run(probe, pythonpath=root)

    assert pure.returncode == 0 and built.returncode == 0, pure.stderr + built.stderr
    assert pure.stdout.splitlines()[-1] == "False" and "stale" not in pure.stderr
    assert all(f.endswith(".py") for f in pure.stdout.splitlines()[:-1])
    assert built.stdout.splitlines()[-1] == "True"
    assert all(f.endswith(".so") for f in built.stdout.splitlines()[:-1])


def test_version_says_whether_the_hot_path_is_compiled():
    from typer.testing import CliRunner

    from hedgekit.cli import app

    out = CliRunner().invoke(app, ["--version"])

    assert out.exit_code == 0
    assert out.output == f"hedgekit {hedgekit.__version__}, backtest hot path {hedgekit.build_mode()}\n"


# A wallet checkpoint crosses builds: written by one, resumed by the other (a source edited
# between two runs turns a compiled build stale, so a live run may resume pure).
_CHECKPOINT = """
import json, sys
import hedgekit
from hedgekit.engine.live import Snapshot, dump_snapshot, load_snapshot
from hedgekit.engine.walker import MarketWalker
from tests.engine.test_snapshots import _driver, _walk
action, path, kind = sys.argv[1:]
prices = _walk(seed=4, n=500)
if action == "dump":
    d = _driver(kind)
    d.start(10_000.0)
    for p in prices[:250]:
        d.goto(p, gap=True)
    open(path, "wb").write(dump_snapshot(Snapshot(d.runner, 0, d.ts)))
else:
    snap = load_snapshot(open(path, "rb").read(), type(_driver(kind).strategy))
    d = _driver(kind)
    d.runner, d.ts, d.strategy, d.venue = snap.runner, snap.last_ts, snap.runner.strategy, snap.runner.venue
    d.walker = MarketWalker.of(snap.runner)
resumed_at = d.ts
for p in prices[250:]:
    d.goto(p, gap=True)
v = d.venue
print(json.dumps({"build": hedgekit.compiled(), "resumed_at": resumed_at,
                  "fills": [repr(f) for f in v.fills], "orders": [repr(o) for o in v.order_log],
                  "account": repr((v.cash, v.position, v.fees_paid, v.realized_pnl))}))
"""


@pytest.mark.parametrize("kind", ["long", "hedge"])  # (the grid stops trading early on this path)
def test_a_checkpoint_written_by_one_build_resumes_identically_in_the_other(kind, tmp_path):
    root = Path(__file__).resolve().parents[1]
    runs = {}
    for writer_pure in (False, True):
        blob = tmp_path / f"{kind}-{writer_pure}.json"
        for action, pure in (("dump", writer_pure), ("load", not writer_pure)):
            out = subprocess.run([sys.executable, "-c", _CHECKPOINT, action, str(blob), kind], cwd=root,
                                 env=_env(Path(f"{SRC}{os.pathsep}{root}"), pure),
                                 capture_output=True, text=True, timeout=600)
            assert out.returncode == 0, out.stderr
            runs[(writer_pure, action)] = json.loads(out.stdout)
    if not any(r["build"] for r in runs.values()):
        pytest.skip("no usable compiled build (make compile builds one)")
    for writer_pure in (False, True):
        dumped, loaded = runs[(writer_pure, "dump")], runs[(writer_pure, "load")]
        assert dumped["build"] != loaded["build"]
        resumed = [f for f in dumped["fills"] if int(f.split("ts=")[1].split(",")[0]) > dumped["resumed_at"]]
        assert len(resumed) >= 2, "the wallet must trade after the checkpoint for this to mean anything"
        assert loaded["fills"] == dumped["fills"]  # the other build trades on exactly alike
        assert loaded["orders"] == dumped["orders"]
        assert loaded["account"] == dumped["account"]


@pytest.mark.parametrize("manifest", [None, "not json"])
def test_a_build_whose_manifest_is_missing_or_unreadable_is_never_used(tmp_path, manifest):
    root = _copy_package(tmp_path)
    if not _has_build(root):
        pytest.skip("no compiled build (make compile builds one)")
    path = root / "hedgekit" / "_compiled.json"
    if manifest is None:
        path.unlink()
    else:
        path.write_text(manifest)

    out = _run(_PROBE, pythonpath=root)

    assert out.returncode == 0, out.stderr
    flag, mode, sim_file = out.stdout.splitlines()
    assert (flag, sim_file) == ("False", str(root / "hedgekit" / "venues" / "sim.py"))
    assert mode == ("pure Python (stale: the build has no manifest)" if manifest is None
                    else "pure Python (stale: unreadable manifest)")
    assert out.stderr.count("compiled hot path is stale") == 1
