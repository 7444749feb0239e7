# Two commands do everything on a fresh Debian machine with Python 3.11:
#   make run    install into .venv and run the main job on the embedded default
#   make test   install into .venv and run the whole test suite (lint + pytest)
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install run test test-fast lint bench clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -m venv $(VENV) || { apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/matrixwatch run

lint: install
	$(VENV)/bin/ruff check matrixwatch tests bench

test: install lint
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: install
	$(PY) -m pytest -q -m "not broker"

bench: install
	$(PY) bench/pipeline_bench.py

clean:
	rm -rf $(VENV) var out .pytest_cache
