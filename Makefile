# recsys-gnn: `make test` and `make train` set everything up on a fresh machine (Python 3.11 needed).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test test-slow lint format train bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U "pip<25" wheel "setuptools<70"
	$(PY) -m pip install -q -e ".[dev,sweep,faiss]"
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

lint: install
	$(VENV)/bin/ruff check recsys_gnn tests run.py
	$(VENV)/bin/ruff format --check recsys_gnn tests run.py

format: install
	$(VENV)/bin/ruff format recsys_gnn tests run.py
	$(VENV)/bin/ruff check --fix recsys_gnn tests run.py

train: install
	$(PY) run.py $(ARGS)

bench: install
	$(PY) -m recsys_gnn.bench $(ARGS)

clean:
	rm -rf logs outputs multirun .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
