# Two entry points for a fresh machine: `make demo` and `make test`.
# Both build a virtual environment in .venv with credproc installed as users get it
# (a regular, non-editable install: the console script is the one SDKs will run).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.credproc-installed
DEMO_STAMP := $(VENV)/.credproc-demo-installed
SOURCES := pyproject.toml $(shell find credproc -name '*.py' 2>/dev/null)

JS_SDK := tests/interop/js/node_modules/.package-lock.json

# The real Amazon provider for the differential test (tests/test_airflow_parity.py), in a
# venv of its own so that Airflow's dependencies never touch credproc's.
AIRFLOW_VENV  := tests/airflow/.venv
AIRFLOW_REQS  := tests/airflow/requirements.txt
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.airflow-installed

.PHONY: install system-deps demo lint test bench clean airflow-venv

install: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The demo needs credproc, a local STS and the AWS CLI only: no system packages.
$(DEMO_STAMP): $(VENV)/bin/python $(SOURCES)
	$(BIN)/python -m pip install --quiet . 'moto[server]>=5' 'awscli>=1.32.63'
	$(BIN)/python -m pip install --quiet --no-deps --force-reinstall .
	@touch $(DEMO_STAMP)

# The tests need every extra (the saml one builds gssapi against libkrb5: system-deps first),
# and `dev` brings the linters that `make lint` runs.
$(STAMP): $(VENV)/bin/python $(SOURCES)
	$(BIN)/python -m pip install --quiet '.[test,dev]'
	$(BIN)/python -m pip install --quiet --no-deps --force-reinstall .
	@touch $(STAMP) $(DEMO_STAMP)

## Run the main job end to end on a local STS (moto on 127.0.0.1): no AWS account needed.
demo: $(DEMO_STAMP)
	$(BIN)/python scripts/demo.py

## System packages for the integration tests (Kerberos KDC, SDKs); see scripts/system-deps.
system-deps:
	scripts/system-deps

$(JS_SDK): tests/interop/js/package-lock.json
	npm ci --prefix tests/interop/js --no-audit --no-fund --silent

## The pinned Airflow + Amazon provider for the differential test (every package pinned, so
# --no-deps: nothing is resolved; `pip check` proves the set complete). Rebuilt from scratch
# when the pins change.
airflow-venv: $(AIRFLOW_STAMP)

$(AIRFLOW_STAMP): $(AIRFLOW_REQS)
	rm -rf $(AIRFLOW_VENV)
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --no-deps -r $(AIRFLOW_REQS)
	$(AIRFLOW_VENV)/bin/python -m pip check
	@touch $(AIRFLOW_STAMP)

## Lint credproc/: ruff, then mypy (settings in pyproject.toml). Any finding fails the target.
# mypy runs even when ruff has found something, so that one run (one CI run) shows both lists.
lint: install
	status=0; $(BIN)/ruff check credproc || status=1; $(BIN)/mypy || status=1; exit $$status

## Run the whole test suite (unit and integration) against real local servers and real SDKs.
# Prerequisites are made left to right: system packages before the pip install that needs them,
# and the lint step before pytest, so that a lint error fails `make test` (and so CI) early.
test: system-deps install $(JS_SDK) $(AIRFLOW_STAMP) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Run every benchmark and record the results in benchmarks/results/.
bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) build *.egg-info
