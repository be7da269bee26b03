# Everyday commands. `make run` and `make test` set everything up themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint proto bench clean

# Bytecode is compiled here because an editable install does not, and
# PYTHONDONTWRITEBYTECODE may stop Python from caching it: every daemon and
# trial would otherwise compile the project's sources again at start-up.
install: $(STAMP)
	@$(PY) -m compileall -q tune_client tune_head tune_worker proto

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all]'
	touch $(STAMP)

run: install
	$(PY) examples/seed_example.py

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

proto: install
	$(PY) -m proto.regenerate

bench: install
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) build *.egg-info
