# Every target sets up .venv on its own (pinned versions from requirements.lock).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# dvc.yaml runs `python -m stages.<name>`: that python must be the venv's.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: repro test lint ui ui-check repro-check bench clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

repro: $(STAMP)  ## run the pipeline on params.yaml
	$(BIN)/dvc repro

lint: $(STAMP)
	$(BIN)/ruff check stages tests benchmarks scripts
	$(BIN)/ruff format --check stages tests benchmarks scripts

test: $(STAMP) lint  ## lint + the whole test suite (but the browser check: make ui-check)
	$(BIN)/pytest -q -m "not ui"

ui-check: $(STAMP)  ## MLflow UI in headless Chromium (Debian's /usr/bin/chromium) over a pipeline store
	$(BIN)/pytest -q -m ui

repro-check: $(STAMP)  ## rerun the pipeline in a clean copy; fail on a stale dvc.lock or drifted metrics
	$(BIN)/python scripts/repro_check.py

ui: $(STAMP)  ## MLflow UI over the pipeline's own store
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db \
		--default-artifact-root $(CURDIR)/mlartifacts --host 127.0.0.1 --port 5000

bench: $(STAMP)  ## ratios measured in one run: no-op dvc repro vs DVC's floor; data-stage imports
	$(BIN)/python benchmarks/stage_imports.py
	$(BIN)/python benchmarks/noop_repro.py

clean:
	rm -rf $(VENV)
