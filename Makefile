# One target per habit: `make demo`, `make test`, `make lint`, `make bench`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the tests run for real; `make test` installs the missing ones when it runs as root.
TEST_DEBS := mosquitto mosquitto-clients postgresql victoria-metrics chromium systemd caddy influxdb \
	prometheus-alertmanager
DEMO_DEBS := mosquitto
# The benchmarks' HTTP load generator, on top of the tests' servers.
BENCH_DEBS := $(TEST_DEBS) wrk

.PHONY: demo test lint bench install lock debs-test debs-demo debs-bench clean

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The newest releases pyproject.toml allows, in a throw-away environment, written to constraints.txt.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --upgrade pip
	.venv-lock/bin/pip install --quiet -e '.[dev]'
	{ sed -n '1,/^$$/p' constraints.txt; .venv-lock/bin/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .venv-lock

install: $(STAMP)

debs-test:
	@scripts/ensure-debs $(TEST_DEBS)

debs-bench:
	@scripts/ensure-debs $(BENCH_DEBS)

debs-demo:
	@scripts/ensure-debs --demo $(DEMO_DEBS)

demo: install debs-demo
	$(BIN)/lokalnie demo

test: install debs-test
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install debs-bench
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python -m bench.$$(basename $$script .py) || exit 1; done

clean:
	rm -rf var/ .pytest_cache .mypy_cache .ruff_cache
