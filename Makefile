# The two commands of the README: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint bench clean chromium

$(BIN)/callscreen: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

run: $(BIN)/callscreen
	$(BIN)/callscreen run --demo

# Browser tests drive Debian's Chromium through Playwright (no browser download); the ops tests
# run Debian's Prometheus and promtool against the alert rules.
chromium:
	@command -v chromium >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || { \
		echo "installing Debian's chromium and prometheus (a minute or two)…"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium prometheus >/dev/null; }

lint: $(BIN)/callscreen
	$(BIN)/ruff check .

test: $(BIN)/callscreen chromium lint
	$(BIN)/python -m pytest

bench: $(BIN)/callscreen
	@echo "benchmarks are run one by one: see docs/benchmarks.md"

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
