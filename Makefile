# Every target sets up .venv on its own (pinned versions from requirements.lock).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# dvc.yaml runs `python -m stages.<name>`: that python must be the venv's.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help repro check test test-e2e lint ui ui-check repro-check bench clean
.DEFAULT_GOAL := help

CODE := stages src tests benchmarks scripts

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

repro: $(STAMP)  ## check params.yaml, then run the pipeline on it
	$(BIN)/python -m reprotrain.cli.check_params
	$(BIN)/dvc repro

lint: $(STAMP)  ## ruff, the import layers and cycles (import-linter), mypy over the library
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	PYTHONPATH=src $(BIN)/lint-imports --no-cache
	$(BIN)/mypy

check: $(STAMP) lint  ## the fast lane: lint + unit tests (no dvc repro, no browser)
	$(BIN)/pytest -q -m "not e2e and not ui and not slow"

test: $(STAMP) lint  ## lint + the whole test suite, end-to-end dvc repro runs included (what CI runs)
	$(BIN)/pytest -q -m "not ui"

test-e2e: $(STAMP)  ## only the end-to-end runs of the real pipeline (tests/e2e)
	$(BIN)/pytest -q -m e2e

ui-check: $(STAMP)  ## MLflow UI in headless Chromium (Debian's /usr/bin/chromium) over a pipeline store
	$(BIN)/pytest -q -m ui

repro-check: $(STAMP)  ## rerun the pipeline in a clean copy; fail on a stale dvc.lock or drifted metrics
	$(BIN)/python scripts/repro_check.py

ui: $(STAMP)  ## MLflow UI over the pipeline's own store
	@echo "the runs: http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db \
		--default-artifact-root $(CURDIR)/mlartifacts --host 127.0.0.1 --port 5000

bench: $(STAMP)  ## ratios measured in one run: no-op dvc repro vs DVC's floor; data-stage imports
	$(BIN)/python benchmarks/stage_imports.py
	$(BIN)/python benchmarks/noop_repro.py

clean:
	rm -rf $(VENV)
