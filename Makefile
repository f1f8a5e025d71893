# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test unit integration e2e lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## start the whole local cloud in the foreground
	$(BIN)/attune dev

test: $(STAMP) lint typecheck  ## unit, integration and e2e tests on embedded defaults
	$(BIN)/pytest -q tests/unit tests/integration
	$(BIN)/pytest -q tests/e2e

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

e2e: $(STAMP)
	$(BIN)/pytest -q tests/e2e

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/cfn-lint infra/template.yaml

typecheck: $(STAMP)
	$(BIN)/mypy chalicelib functions bench app.py

bench: $(STAMP)  ## benchmarks; results as JSON under bench/results/
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .attune .pytest_cache .mypy_cache .ruff_cache
