# recsys-gnn: `make test` and `make train` set everything up on a fresh machine (Python 3.11 needed).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK ?= requirements/cpu.lock
# install-cuda: CUDA build of the wheels; cu121 (default) or cu118. PyPI's torch 2.2.1 already is a cu121 build.
CUDA ?= cu121
# make bench also serves top-10 from a synthetic catalogue of this many items (recsys_gnn.bench.catalogue).
CATALOGUE_ITEMS ?= 1000000
DGL_WHEELS := https://data.dgl.ai/wheels/torch-2.2/$(CUDA)/repo.html
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install install-cuda lock gpu-check test test-slow lint format train bench clean

install: $(STAMP)

# The exact tested stack from the lock, then the project itself without resolving anything again.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U "pip<25" wheel "setuptools<70"
	$(PY) -m pip install -q -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m pip check
	touch $(STAMP)

# GPU training with every GNN (gat, the classic stacks, backend=dgl run DGL on the GPU): DGL's CUDA wheel from its own
# index (not on PyPI), and for CUDA=cu118 torch 2.2.1's cu118 build. Needs an NVIDIA driver for that CUDA.
install-cuda: install
ifneq ($(CUDA),cu121)
	$(PY) -m pip install -q "torch==2.2.1+$(CUDA)" --extra-index-url https://download.pytorch.org/whl/$(CUDA)
endif
	$(PY) -m pip install -q --no-deps "dgl==2.1.0+$(CUDA)" -f $(DGL_WHEELS)
	$(PY) -c "from recsys_gnn.distributed import dgl_has_cuda; assert dgl_has_cuda(), 'DGL has no CUDA'"

# Re-resolve pyproject.toml's ranges in a scratch venv and pin the result (run after changing dependencies).
lock:
	rm -rf $(VENV)-lock && $(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/pip install -q -U "pip<25" wheel "setuptools<70"
	$(VENV)-lock/bin/pip install -q ".[dev,sweep,faiss]"
	{ sed -n '/^#/p' $(LOCK); $(VENV)-lock/bin/pip freeze --all --exclude recsys-gnn \
		| grep -vE '^(pip|wheel)=='; } > $(LOCK).new && mv $(LOCK).new $(LOCK)
	rm -rf $(VENV)-lock

# One epoch of each GNN on the GPU and on the CPU, metrics compared (skips without a CUDA device).
gpu-check: install
	bash experiments/bench/gpu_check.sh $(ARGS)

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
	$(PY) -m recsys_gnn.bench.catalogue --items $(CATALOGUE_ITEMS) --out experiments/bench/catalogue.md

clean:
	rm -rf logs outputs multirun .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
