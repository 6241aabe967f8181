# make test: install everything this checkout needs (virtualenv, package, ClickHouse server), run the tests.
# make demo: the same setup, then the local end-to-end demo.
# make bench: the benchmarks with their targets (BENCH_ARGS=--quick for a short run); see bench/README.md.
# make partitions: replay --partitions 1, 2, 3, 8 on several ledgers; the warnings must be identical.
# make faults: the long fault-injection run (kills, outages, poison) with its figures.
# make fuzz: 1,000,000 mutated event lines through the parser and `fundflow replay` (FUZZ_LINES to change).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CLICKHOUSE_SERVER := /usr/sbin/clickhouse-server
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

FUZZ_LINES ?= 1000000

.PHONY: setup clickhouse chromium test demo bench partitions faults fuzz clean

setup: $(VENV)/.installed clickhouse chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstalled only when the dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -e '.[test]'
	touch $@

clickhouse:
	@if [ -x $(CLICKHOUSE_SERVER) ] || command -v clickhouse-server >/dev/null || command -v clickhouse >/dev/null; then \
		echo "ClickHouse server: found"; \
	else \
		echo "ClickHouse server: installing the Debian package clickhouse-server"; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q clickhouse-server; \
	fi

# The console's browser tests drive Debian's chromium through Playwright (`playwright install` downloads a
# browser, which CI cannot).
chromium:
	@if [ -x $(CHROMIUM) ]; then \
		echo "Chromium: found"; \
	else \
		echo "Chromium: installing the Debian package chromium"; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	fi

test: setup
	$(BIN)/pytest -q $(PYTEST_ARGS)

demo: setup
	$(BIN)/fundflow demo

bench: setup
	$(BIN)/python -m bench $(BENCH_ARGS)

partitions: setup
	$(BIN)/python -m bench.partitions $(BENCH_ARGS)

faults: setup
	FUNDFLOW_FAULTS=long $(BIN)/pytest -q -s -p no:cacheprovider tests/integration/test_fault_injection.py

fuzz: setup
	$(BIN)/python tests/fuzz_events.py --lines $(FUZZ_LINES)

clean:
	rm -rf .pytest_cache .hypothesis .fundflow
