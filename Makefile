# THUNES — two commands: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
ORACLE_VENV := .venv-oracle
ORACLE_PY := $(ORACLE_VENV)/bin/python
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
THUNES := $(VENV)/bin/thunes

.PHONY: demo test lint install install-dev install-oracle system-deps paper optimize bench clean help

help:
	@echo "make demo      run the main job offline on the embedded defaults"
	@echo "make test      install what the tests need and run them"
	@echo "make paper     paper-trade a strategy against the local exchange (accelerated replay)"
	@echo "make optimize  run a 25-trial Optuna study of the SMA crossover on BTC/USDT 1h"
	@echo "make bench     run every benchmark in benchmarks/"
	@echo "make lint      ruff (known findings in ruff-baseline.toml) and mypy (strict, packages in pyproject.toml)"

$(VENV)/.core: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.core
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[dev,ml,telegram,stream,api]"
	touch $@

# The vectorbt oracle pins pandas < 3, so it gets an environment of its own: the product's tests run on the
# versions `pip install thunes` resolves (.venv), the agreement tests against vectorbt run here.
$(ORACLE_VENV)/.ok: pyproject.toml
	test -x $(ORACLE_PY) || $(PYTHON) -m venv $(ORACLE_VENV)
	$(ORACLE_VENV)/bin/pip install -q --upgrade pip
	$(ORACLE_VENV)/bin/pip install -q -e ".[dev,oracle]"
	touch $@

install: $(VENV)/.core
install-dev: $(VENV)/.dev
install-oracle: $(ORACLE_VENV)/.ok

system-deps:
	bash scripts/install-system-deps.sh

test: install-dev install-oracle system-deps
	$(PY) -m pytest -q -p no:cacheprovider -m "not oracle" $(PYTEST_ARGS)
	THUNES_ORACLE=1 $(ORACLE_PY) -m pytest -q -p no:cacheprovider -m oracle $(PYTEST_ARGS)

demo: install
	bash scripts/demo.sh

paper: install
	$(THUNES) paper --sample --timeframe 5m --replay-speed 600 --duration 180

optimize: install
	$(THUNES) optimize --sample --strategy sma_cross --symbol BTC/USDT --timeframe 1h --trials 25

# ruff: known findings are listed per file in ruff-baseline.toml (scripts/lint_baseline.py), the list only shrinks.
# mypy: strict on the packages [tool.mypy] lists in pyproject.toml.
lint: install-dev
	$(PY) -m ruff check thunes tests benchmarks scripts
	$(PY) -m mypy

bench: install-dev install-oracle
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(ORACLE_PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) $(ORACLE_VENV) build *.egg-info .pytest_cache
