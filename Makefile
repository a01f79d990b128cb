# keeper — two commands do everything on a fresh machine with python3/pip, node/npm and make:
#   make demo   bootstrap, start the devnet, deploy the reference system, run the keeper's main job
#   make test   bootstrap, lint, type-check and run the whole test suite
# Bootstrap is idempotent: stamp files make a second run a no-op in seconds.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV := $(PYTHON) -m uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv
VENV_BIN := .venv/bin
PYTEST_ARGS ?=

.PHONY: help setup demo test lint typecheck pytest abis clean

help:
	@echo "make demo   - bring up the devnet and run the keeper's main job on it"
	@echo "make test   - lint (ruff), type-check (mypy --strict) and run the test suite"
	@echo "make abis   - recompile contracts/ into abis/ (solc from npm)"
	@echo "make setup  - only the bootstrap (uv, .venv from uv.lock, node_modules from package-lock.json)"

# --- bootstrap -------------------------------------------------------------------------------
.tools/uv.stamp:
	@mkdir -p .tools
	@if ! $(UV) --version >/dev/null 2>&1; then \
	  echo "bootstrap: installing uv with pip"; \
	  $(PYTHON) -m pip install --quiet uv 2>/dev/null \
	  || $(PYTHON) -m pip install --quiet --user uv 2>/dev/null \
	  || $(PYTHON) -m pip install --quiet --user --break-system-packages uv; \
	fi
	@$(UV) --version >/dev/null
	@touch $@

.venv/.synced: .tools/uv.stamp uv.lock pyproject.toml
	$(UV) sync --frozen --quiet
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

setup: .venv/.synced node_modules/.installed

# --- the two commands ------------------------------------------------------------------------
demo: setup
	$(VENV_BIN)/keeper demo

test: setup lint typecheck pytest

lint: setup
	$(VENV_BIN)/ruff check .

typecheck: setup
	$(VENV_BIN)/mypy

pytest: setup
	$(VENV_BIN)/pytest -q $(PYTEST_ARGS)

# every fault and abuse scenario (slow ones included), then RELIABILITY.md from their result rows:
# tests/faults, the pipeline kill drill (DRILL_CYCLES intents per journal checkpoint; as many rebalance cycles of
# `keeper run` killed at each checkpoint) and the HA failover tests (they need KEEPER_TEST_DATABASE_URL, as in
# .ci/run), and the full 8-day demo (every trigger kind mined, tests/test_demo.py). The soak ticks 1000
# vaults back to back for SOAK_SECONDS (one hour by default: ~115 min in all).
# Fails when pytest fails, the secret scan finds a key, or a row's verdict is fail/finding or an expected
# scenario did not run (keeper.faults.report --check).
SOAK_SECONDS ?= 3600
DRILL_CYCLES ?= 10
FAULT_TESTS = tests/faults tests/execute/test_kill_drill.py tests/ha/test_failover.py tests/test_demo.py
.PHONY: faults
faults: setup
	rm -f .keeper/reliability/results.jsonl
	KEEPER_SOAK_SECONDS=$(SOAK_SECONDS) KEEPER_DRILL_CYCLES=$(DRILL_CYCLES) KEEPER_DAEMON_CYCLES=$(DRILL_CYCLES) \
	$(VENV_BIN)/pytest -q -m "slow or not slow" $(FAULT_TESTS) || status=$$?; \
	$(VENV_BIN)/python -m keeper.faults.report --check || status=$${status:-1}; exit $${status:-0}

# --- tools -----------------------------------------------------------------------------------
abis: node_modules/.installed
	node contracts/compile.mjs

clean:
	rm -rf .venv node_modules .tools .mypy_cache .ruff_cache .pytest_cache .keeper
