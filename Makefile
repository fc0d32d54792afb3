# The two commands a new user types: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

# The compiled catalogues (.mo) are built from the translations (.po), never committed.
CATALOGUES := $(patsubst %.po,%.mo,$(wildcard scn_workflow/translations/*/LC_MESSAGES/messages.po))

.PHONY: run test unit integration bench clean screenshots translations messages

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

%.mo: %.po $(BIN)/.installed
	$(BIN)/pybabel compile --statistics -i $< -o $@

translations: $(CATALOGUES)  ## compile the catalogues (make run and make test do it)

messages: $(BIN)/.installed  ## extract the strings people read and add the new ones to each catalogue, to translate
	$(BIN)/pybabel extract --mapping-file babel.cfg --no-location --sort-output --omit-header \
	  --keywords _l --keywords N_ --output-file scn_workflow/translations/messages.pot .
	$(BIN)/pybabel update --ignore-obsolete --no-fuzzy-matching --width 120 \
	  -i scn_workflow/translations/messages.pot -d scn_workflow/translations

run: $(BIN)/.installed translations  ## migrate and seed the embedded SQLite database, then serve on $(HOST):$(PORT)
	$(BIN)/scn-workflow db upgrade
	$(BIN)/scn-workflow seed
	$(BIN)/scn-workflow serve --host $(HOST) --port $(PORT)

test: $(BIN)/.installed translations  ## the whole suite: unit, integration (PostgreSQL, Redis, worker, SMTP), end to end
	$(BIN)/pytest

unit: $(BIN)/.installed translations
	$(BIN)/pytest tests/unit

integration: $(BIN)/.installed translations
	$(BIN)/pytest tests/integration

screenshots: $(BIN)/.installed translations  ## docs/screenshots/: the pages (Debian's chromium) and a page of the dossier
	$(BIN)/python -m tests.e2e.screenshots
	$(BIN)/python docs/screenshots/dossier.py

bench: $(BIN)/.installed  ## bench/transitions.py, bench/lifecycle.py, bench/pages.py (about 4 minutes; figures in bench/results/)
	$(BIN)/python bench/transitions.py
	$(BIN)/python bench/lifecycle.py
	$(BIN)/python bench/pages.py

clean:
	rm -rf $(VENV) instance .pytest_cache
