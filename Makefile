# The two commands a new user types: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test unit integration bench clean screenshots

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(BIN)/.installed  ## migrate and seed the embedded SQLite database, then serve on $(HOST):$(PORT)
	$(BIN)/scn-workflow db upgrade
	$(BIN)/scn-workflow seed
	$(BIN)/scn-workflow serve --host $(HOST) --port $(PORT)

test: $(BIN)/.installed  ## the whole suite: unit, integration (PostgreSQL, Redis, worker, SMTP), end to end
	$(BIN)/pytest

unit: $(BIN)/.installed
	$(BIN)/pytest tests/unit

integration: $(BIN)/.installed
	$(BIN)/pytest tests/integration

screenshots: $(BIN)/.installed  ## docs/screenshots/ with the end-to-end browser (Debian's chromium)
	$(BIN)/python -m tests.e2e.screenshots

bench: $(BIN)/.installed  ## bench/transitions.py, bench/lifecycle.py, bench/pages.py (about 4 minutes; figures in bench/results/)
	$(BIN)/python bench/transitions.py
	$(BIN)/python bench/lifecycle.py
	$(BIN)/python bench/pages.py

clean:
	rm -rf $(VENV) instance .pytest_cache
