# The two README commands: `make mini` (the main job) and `make test`.
# Both create the virtual environment on first use; nothing else is needed.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup mini test test-realdata lint

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

mini: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" bash recipes/mini/run.sh

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

# real-speech checks: need ../shared/data
test-realdata: setup
	$(PY) -m pytest -q -m realdata
