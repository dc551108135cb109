# Two commands set everything up on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
PIP := $(BIN)/python -m pip install -q --disable-pip-version-check
# uv (from PyPI) installs the ~300 MB of wheels in seconds; plain pip is the fallback.
INSTALL = if $(BIN)/python -m uv --version >/dev/null 2>&1; \
	then $(BIN)/python -m uv pip install -q --python $(BIN)/python $(1); \
	else $(PIP) --no-compile $(1); fi

CHROMIUM ?= /usr/bin/chromium

.PHONY: run test bench chaos lint docs clean chromium postgres compile pure

# `make run` needs only the runtime dependencies; the test tools come with `make test`.
# Both are redone when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) uv || echo "uv not available: installing with pip (slower)"
	$(call INSTALL,-e .)
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(call INSTALL,-e '.[dev]')
	touch $(DEV_STAMP)

# The backtest hot path compiled with mypyc (tools/build_compiled.py): rebuilt when one of its
# sources changes. Without a C compiler it warns and everything runs pure Python; a build
# older than its sources is never used (hedgekit falls back to pure Python and says so).
COMPILED_SRC := $(shell $(PY) tools/build_compiled.py --list)
# The stamp is per clone (the build lives in src/), touched also when the compile failed, so a
# machine without a compiler is warned once per change, not on every command.
COMPILE_STAMP := build/compiled.stamp
$(COMPILE_STAMP): $(STAMP) tools/build_compiled.py $(COMPILED_SRC)
	$(BIN)/python tools/build_compiled.py
	mkdir -p build && touch $(COMPILE_STAMP)

compile: $(STAMP)
	$(BIN)/python tools/build_compiled.py
	mkdir -p build && touch $(COMPILE_STAMP)

# Removes the compiled build (HEDGEKIT_PURE=1 ignores it without removing it).
pure:
	$(PY) tools/build_compiled.py --pure
	mkdir -p build && touch $(COMPILE_STAMP)

run: $(STAMP) $(COMPILE_STAMP)
	$(BIN)/hedgekit backtest

# Debian's chromium for the report's real-browser test; skipped when already there. If the
# install fails the browser test fails with its own message (HEDGEKIT_SKIP_BROWSER=1 skips it).
chromium:
	@test -x $(CHROMIUM) || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing Debian's chromium for the browser tests (apt-get)..."; \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
	  || echo "warning: could not install chromium; the browser tests will fail (HEDGEKIT_SKIP_BROWSER=1 skips them)"; \
	}

# Debian's PostgreSQL server for the journal's PostgreSQL tests, which start a throwaway cluster
# of their own; skipped when initdb is already there. Without it those tests skip.
postgres:
	@{ ls /usr/lib/postgresql/*/bin/initdb || command -v initdb; } >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing Debian's postgresql for the journal's PostgreSQL tests (apt-get)..."; \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null; } \
	  || echo "warning: could not install postgresql; the journal's PostgreSQL tests will be skipped"; \
	}

test: $(DEV_STAMP) $(COMPILE_STAMP) chromium postgres
	$(BIN)/python -m pytest -n 2 -p no:cacheprovider

# The sweep bench needs Ray (the dev extras); `make bench TRIALS=100` for a quicker sweep.
TRIALS ?= 1000
bench: $(DEV_STAMP) $(COMPILE_STAMP)
	$(BIN)/python benchmarks/bench_backtest.py
	$(BIN)/python benchmarks/bench_paper.py
	$(BIN)/python benchmarks/bench_memory.py
	$(BIN)/python benchmarks/bench_sweep.py --trials $(TRIALS)

# The REAL adapter against faulty stub exchanges (issue 12): venue × fault × runs, all 0; then
# the REAL CLI SIGKILLed at KILLS random points per venue and resumed (tests/engine/sigkill.py).
# `make test` runs both at a small size (tests/venues/test_chaos.py, tests/engine/test_real_sigkill.py);
# the fault table took 16 min on a busy 2-core machine, the kills ~5 min.
RUNS ?= 3
BARS ?= 200
KILLS ?= 20
chaos: $(DEV_STAMP)
	$(BIN)/python benchmarks/chaos.py --runs $(RUNS) --bars $(BARS) --kills $(KILLS)

docs: $(STAMP)
	$(BIN)/python -m hedgekit.docs README.md

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/mypy

clean:
	rm -rf $(VENV) out logs state build
	$(PY) tools/build_compiled.py --pure
