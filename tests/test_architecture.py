"""Dependencies point inward: strategies import only hedgekit.core; core does no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "hedgekit"


def hedgekit_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("hedgekit")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hedgekit"):
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted((SRC / "strategies").rglob("*.py")), ids=lambda p: p.name)
def test_strategies_import_only_core(path):
    # A strategy package (strategies/grid_hedge/) may import its own modules, besides core.
    own = f"hedgekit.strategies.{path.relative_to(SRC / 'strategies').parts[0]}".removesuffix(".py")
    outside = {m for m in hedgekit_imports(path) if not m.startswith(("hedgekit.core", own))}
    assert not outside, f"{path.name} imports {sorted(outside)}"


@pytest.mark.parametrize("path", sorted((SRC / "core").glob("*.py")), ids=lambda p: p.name)
def test_core_imports_only_core_and_does_no_io(path):
    outside = {m for m in hedgekit_imports(path) if not m.startswith("hedgekit.core")}
    assert not outside, f"{path.name} imports {sorted(outside)}"
    text = path.read_text()
    for banned in ("open(", "import os", "import time", "datetime.now", "requests", "ccxt", "sqlalchemy", "loguru"):
        assert banned not in text, f"{path.name} uses {banned!r}: core is pure"


@pytest.mark.parametrize("layer", ["venues", "feeds"])
def test_venues_and_feeds_never_reach_into_strategies(layer):
    for path in (SRC / layer).glob("*.py"):
        assert not {m for m in hedgekit_imports(path) if m.startswith("hedgekit.strategies")}, path.name


def test_the_journal_stores_core_records_and_never_imports_a_venue():
    for path in (SRC / "store").glob("*.py"):
        assert not {m for m in hedgekit_imports(path) if m.startswith(("hedgekit.venues", "hedgekit.engine"))}, path.name


def test_sweep_sits_on_top_of_engine_and_report():
    # sweep uses engine and report; only the CLI uses sweep; its --param grammar needs only config.
    for path in SRC.rglob("*.py"):
        if path.parent.name == "sweep" or path.name == "cli.py":
            continue
        assert not {m for m in hedgekit_imports(path) if m.startswith("hedgekit.sweep")}, path.name
    params = hedgekit_imports(SRC / "sweep" / "params.py")
    assert params <= {"hedgekit.config", "hedgekit.core.errors"}, params
    assert not {m for m in hedgekit_imports(SRC / "sweep" / "html.py") if m.startswith("hedgekit.engine")}


@pytest.mark.parametrize("path", sorted((SRC / "report").glob("*.py")), ids=lambda p: p.name)
def test_report_reads_results_and_never_imports_the_engine(path):
    """Layers, lowest first: core, strategies, venues/feeds, store, report, engine, sweep, cli.
    The report renders results; what builds them from the engine's objects is in engine."""
    above = {m for m in hedgekit_imports(path) if m.startswith(("hedgekit.engine", "hedgekit.sweep", "hedgekit.cli"))}
    assert not above, f"report/{path.name} imports {sorted(above)}"


MAX_MODULE_LINES = 700


def test_no_module_is_over_700_lines():
    """Modules are sized by their job (journal -> schema, backends, lease, queries; grid hedge ->
    params, sizing, ladder, machine; html -> figures, page): a module past the limit is split."""
    long = {}
    for path in SRC.rglob("*.py"):
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            long[path.relative_to(SRC).as_posix()] = lines
    over = long
    assert not over, f"modules over {MAX_MODULE_LINES} lines (split them along their seams): {over}"
