# hft-workbench: every target creates .venv on first use, so `make demo` and
# `make test` are the whole set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test lab bench venv clean-cache browser redis

# The in-browser test drives Debian's chromium with Playwright. Installed when missing and
# when we can (root with apt-get, as on CI); otherwise that one test skips with a reason.
CHROMIUM := /usr/bin/chromium

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

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

test: $(STAMP) browser redis
	WORKBENCH_HEADLESS=1 $(BIN)/python -m pytest -n 2 --dist loadfile tests --nbmake notebooks $(PYTEST_ARGS)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

bench: $(STAMP)
	$(BIN)/python -m workbench bench all

clean-cache:
	find . -path ./$(VENV) -prune -o \( -name '*.nbi' -o -name '*.nbc' \) -print0 | xargs -0 rm -f
