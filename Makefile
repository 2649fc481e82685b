# Two entry points for a fresh machine: `make demo` and `make test`.
# Both build a virtual environment in .venv with credproc installed as users get it
# (a regular, non-editable install: the console script is the one SDKs will run).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.credproc-installed
SOURCES := pyproject.toml $(shell find credproc -name '*.py' 2>/dev/null)

.PHONY: install demo test bench clean

install: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(VENV)/bin/python $(SOURCES)
	$(BIN)/python -m pip install --quiet '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps --force-reinstall .
	@touch $(STAMP)

## Run the main job end to end on a local STS (moto on 127.0.0.1): no AWS account needed.
demo: install
	$(BIN)/python scripts/demo.py

## Run the whole test suite (unit and integration) against real local servers.
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
