# mnf: two commands on a fresh machine (see README.md)
#   make book   set up .venv, fetch CIFAR-10, build the HTML book into _build/html (executes every chapter)
#   make test   set up .venv, fetch CIFAR-10, run the test suite, the CUDA-simulator tests, every chapter's
#               gpu branch in smoke mode, and the book at MNF_BUDGET=ci
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
export MNF_DATA ?= $(CURDIR)/.data
export PYTHONHASHSEED := 0

.PHONY: setup data book smoke test test-fast test-cuda browser bench gpu-check times results clean

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

# Builds at MNF_BUDGET (unset: gpu with CUDA, else cpu); outputs are cached per budget.
book: data
	$(BIN)/python tools/notebook.py build
	$(BIN)/python tools/notebook.py check-build

# Every chapter's gpu branch (what Colab runs) top to bottom, with the work capped (MNF_SMOKE=1).
smoke: data
	MNF_BUDGET=gpu MNF_SMOKE=1 $(BIN)/python tools/notebook.py smoke

test-fast: data
	$(BIN)/python -m pytest -m "not slow" -q

test-cuda: setup
	NUMBA_ENABLE_CUDASIM=1 $(BIN)/python -m pytest tests/cuda -q

test: data
	$(BIN)/python -m pytest -q
	$(MAKE) test-cuda
	$(MAKE) smoke
	MNF_BUDGET=ci $(MAKE) book
	$(MAKE) browser

# The built book (_build/html) in headless Chromium: console errors, broken links and images, shrunk
# figures, raw Markdown/TeX, unrendered math, stuck animations, error outputs (tools/browser_check.py).
browser: setup
	MNF_BROWSER_CHECK=1 $(BIN)/python -m pytest -q tests/test_browser.py

# On a machine with a CUDA GPU (Colab T4, ...): the CUDA tests without the simulator, the smoke book on
# the GPU, speed beside conv / clone, one epoch per MobileNetV2 variant; a PASS/FAIL table.
#   make gpu-check GPU_CHECK_FLAGS=--quick
gpu-check: data
	$(BIN)/python tools/gpu_check.py $(GPU_CHECK_FLAGS)

bench: setup
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

# Store per-chapter times in mnf/chapter_times.json: the last `make book` at MNF_BUDGET, and a
# smoke run (with the gpu estimates derived from it).
times: data
	$(BIN)/python tools/notebook.py record-times
	MNF_BUDGET=gpu MNF_SMOKE=1 MNF_RECORD=1 $(BIN)/python tools/notebook.py smoke

# The recorded runs the chapter "Multiplier-free MobileNetV2" renders (mnf/results/, mnf.results):
# four variants x two seeds x ten minutes of training, then the ablations (one lever per row, two
# seeds, two epochs each): about 2 h 30 min on the two-core machine the records come from (the
# ten-minute runs take 10-11 min each with evaluation, the 20 ablation runs about an hour).
results: data
	$(BIN)/python benchmarks/bench_cpu_budget.py --experiment mobilenet_cpu10 --variants all --seeds 0,1 --record --quiet
	$(BIN)/python benchmarks/bench_cpu_budget.py --experiment mobilenet_ablation --variants all --seeds 0,1 \
		--epochs 2 --record --quiet
	$(BIN)/python tools/notebook.py forget book/mobilenet/multiplier_free.ipynb   # re-render the records

clean:
	rm -rf _build
