# mnf: two commands on a fresh machine (see README.md)
#   make book   set up .venv, fetch CIFAR-10, build the HTML book into _build/html (executes every chapter)
#   make test   set up .venv, fetch CIFAR-10, run the test suite, the CUDA-simulator tests, and the book at MNF_BUDGET=ci
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
export MNF_DATA ?= $(CURDIR)/.data
export PYTHONHASHSEED := 0

.PHONY: setup data book test test-fast test-cuda bench clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed

# The offline copy in ../shared when there is one (CI, machines without internet), else the official download.
data: setup
	@if [ -f "$(MNF_DATA)/cifar-10-batches-py/test_batch" ]; then echo "CIFAR-10 at $(MNF_DATA)"; \
	elif [ -f "$(SHARED)/data/make_cifar10.py" ]; then $(BIN)/python "$(SHARED)/data/make_cifar10.py" "$(MNF_DATA)"; \
	else $(BIN)/python -m mnf data --root "$(MNF_DATA)"; fi

book: data
	$(BIN)/jupyter-book build . -W --keep-going
	$(BIN)/python tools/notebook.py check-build

test-fast: data
	$(BIN)/python -m pytest -m "not slow" -q

test-cuda: setup
	NUMBA_ENABLE_CUDASIM=1 $(BIN)/python -m pytest tests/cuda -q

test: data
	$(BIN)/python -m pytest -q
	$(MAKE) test-cuda
	MNF_BUDGET=ci $(MAKE) book

bench: setup
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf _build
