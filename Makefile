# The two commands of the README: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint bench clean chromium

RUN_ARGS ?=

$(BIN)/callscreen: pyproject.toml
	@echo "==> creating $(VENV) and installing callscreen with its dependencies (about a minute, once)"
	$(PYTHON) -m venv $(VENV)
	@# one line per package as pip collects it; the whole output is kept in $(VENV)/pip.log
	@# (the log exists before tail opens it, and pip has finished before its status is read: on a
	@# busy machine the background install may not have started when tail does)
	@: > $(VENV)/pip.log; rm -f $(VENV)/pip.status; \
		{ $(BIN)/pip install --disable-pip-version-check --progress-bar off -e '.[test]' > $(VENV)/pip.log 2>&1; \
		echo $$? > $(VENV)/pip.status; } & \
		pid=$$!; tail -n +1 -f $(VENV)/pip.log --pid=$$pid | grep -a --line-buffered -E '^(Collecting|Successfully installed)' \
		| sed -u 's/^/    /'; \
		wait $$pid; status=$$(cat $(VENV)/pip.status); \
		if [ "$$status" != 0 ]; then tail -n 30 $(VENV)/pip.log; echo "pip install failed ($(VENV)/pip.log)"; exit 1; fi
	touch $@

# Extra options: make run RUN_ARGS="--dashboard-port 8081" (or CALLSCREEN_DASHBOARD_PORT=8081 make run)
run: $(BIN)/callscreen
	$(BIN)/callscreen run --demo $(RUN_ARGS)

# Browser tests drive Debian's Chromium through Playwright (no browser download); the ops tests
# run Debian's Prometheus and promtool against the alert rules.
chromium:
	@command -v chromium >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || { \
		echo "==> installing Debian's chromium and prometheus for the browser and ops tests (apt-get; a minute or two, once)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium prometheus >/dev/null && \
		echo "==> chromium and prometheus installed"; }

lint: $(BIN)/callscreen
	$(BIN)/ruff check .

test: $(BIN)/callscreen chromium lint
	$(BIN)/python -m pytest

bench: $(BIN)/callscreen
	@echo "benchmarks are run one by one: see docs/benchmarks.md"

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
