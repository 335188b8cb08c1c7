# hft-workbench: every target creates .venv on first use, so `make demo` and
# `make test` are the whole set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
LAB_STAMP := $(VENV)/.lab-stamp
WHEELHOUSE := wheelhouse
PYTEST_ARGS ?=

.PHONY: demo test notebooks lab bench venv clean-cache browser redis wheelhouse

# The in-browser test drives Debian's chromium with Playwright. Installed when missing and
# when we can (root with apt-get, as on CI); otherwise that one test skips with a reason.
CHROMIUM := /usr/bin/chromium

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# A student's machine: the [lab] extra only (JupyterLab and what the notebooks import, no
# test or development tools), in the same .venv (a later `make test` adds [dev] on top).
$(LAB_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[lab]'
	@touch $(LAB_STAMP)

# The offline lab bundle (needs the network once): the package and every dependency of
# [lab] as wheels in wheelhouse/, for this platform and Python version. A machine without
# network then installs with
#   pip install --no-index --find-links wheelhouse 'hft-workbench[lab]'
# The dependencies are collected again only when pyproject.toml changes; the package's own
# wheel whenever its sources do.
PACKAGE_FILES := $(shell find kernels workbench -type f \( -name '*.py' -o -name '*.json' \) -not -path '*/__pycache__/*' 2>/dev/null)

$(WHEELHOUSE)/.deps-stamp: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	rm -rf $(WHEELHOUSE).tmp
	$(BIN)/python -m pip wheel --quiet --wheel-dir $(WHEELHOUSE).tmp '.[lab]'
	rm -rf $(WHEELHOUSE) && mv $(WHEELHOUSE).tmp $(WHEELHOUSE)
	@touch $@

$(WHEELHOUSE)/.package-stamp: $(WHEELHOUSE)/.deps-stamp $(PACKAGE_FILES)
	rm -f $(WHEELHOUSE)/hft_workbench-*.whl
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir $(WHEELHOUSE) .
	@touch $@

wheelhouse: $(WHEELHOUSE)/.package-stamp

demo: $(STAMP)
	$(BIN)/python -m workbench demo

browser:
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium for the browser test"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "chromium could not be installed: the browser test will skip"; \
	fi

# The Redis tests and notebook 13 start a throwaway redis-server of their own (Debian's
# package). Installed when missing and when we can (root with apt-get, as on CI);
# otherwise those tests skip with a reason and the notebook says why it skips its Redis cells.
redis:
	@if ! command -v redis-server >/dev/null && [ ! -x /usr/bin/redis-server ] \
			&& [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing redis-server for the Redis tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends redis-server >/dev/null) \
			|| echo "redis-server could not be installed: the Redis tests will skip"; \
	fi

# The wheelhouse build waits on the network, the tests on the CPU: it runs beside them, and
# tests/test_wheelhouse.py waits for its result (.wheelhouse.rc, its log .wheelhouse.log).
test: $(STAMP) browser redis
	@rm -f .wheelhouse.rc; \
	( $(MAKE) --no-print-directory wheelhouse > .wheelhouse.log 2>&1; echo $$? > .wheelhouse.rc ) & \
	WORKBENCH_HEADLESS=1 WORKBENCH_WHEELHOUSE_RC=.wheelhouse.rc \
		$(BIN)/python -m pytest -n 2 --dist loadfile --durations=25 tests $(PYTEST_ARGS); status=$$?; \
	wait; exit $$status

# The notebooks alone, headless through nbmake (quick while writing a lesson). `make test`
# runs every notebook in JupyterLab + Chromium instead (tests/test_notebooks_browser_*.py).
notebooks: $(STAMP)
	WORKBENCH_HEADLESS=1 $(BIN)/python -m pytest -n 2 --nbmake notebooks $(PYTEST_ARGS)

# Compiles every kernel once before JupyterLab starts (seconds when already cached), so the
# first notebook starts warm.
lab: $(LAB_STAMP)
	$(BIN)/python -m workbench warmup || echo "warmup reported a problem (above): the notebooks still run, compiling on first use"
	$(BIN)/jupyter lab notebooks

# the peers are unchecked C++/Rust: compare like with like (LabUnsafe, the unchecked build)
bench: $(STAMP)
	$(BIN)/python -m workbench --mode lab bench all

clean-cache:
	find . -path ./$(VENV) -prune -o \( -name '*.nbi' -o -name '*.nbc' \) -print0 | xargs -0 rm -f
