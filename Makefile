# Every target sets itself up: a fresh clone needs nothing but python3 (>=3.10) and make.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help demo test test-all bench check clean

help:
	@echo "make demo   - the knowledge-rekindle demo on the shipped Cranfield sample (default model)"
	@echo "make test   - the default (fast) test suite"
	@echo "make test-all - every test, slow ones included"
	@echo "make bench  - speed benchmarks, each against a baseline (see benchmarks/README.md)"
	@echo "make check  - ruff lint + format check"

# torch is installed first and pinned: an unpinned torch pulls gigabytes of CUDA packages.
$(STAMP): requirements.lock pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rerank cycle --config data/cranfield/cycle.toml

# The inference extras (ONNX Runtime, OpenVINO, NNCF) so that the backend tests run too.
INFER_STAMP := $(VENV)/.installed-inference
$(INFER_STAMP): $(STAMP) requirements-inference.lock
	$(BIN)/pip install -q torch==2.13.0 -r requirements-inference.lock
	touch $(INFER_STAMP)

# optimum for sentence-transformers' onnx/openvino CrossEncoder backends: it needs an older
# transformers than requirements.lock's, so it goes into its own folder (not on the venv's path);
# the tests that load an export in CrossEncoder run it in a child process (RERANK_OPTIMUM_PATH).
OPTIMUM := $(VENV)/optimum-st
OPTIMUM_STAMP := $(VENV)/.installed-optimum
$(OPTIMUM_STAMP): $(STAMP) requirements-optimum.lock
	rm -rf $(OPTIMUM)
	$(BIN)/pip install -q --no-deps --target $(OPTIMUM) -r requirements-optimum.lock
	touch $(OPTIMUM_STAMP)

test: $(INFER_STAMP) $(OPTIMUM_STAMP)
	RERANK_OPTIMUM_PATH=$(abspath $(OPTIMUM)) $(BIN)/python -m pytest -q

test-all: $(INFER_STAMP) $(OPTIMUM_STAMP)
	RERANK_OPTIMUM_PATH=$(abspath $(OPTIMUM)) $(BIN)/python -m pytest -q -m ""

BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP) requirements-bench.lock
	$(BIN)/pip install -q -r requirements-bench.lock
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/pnr.py
	$(BIN)/python benchmarks/evaluate_cli.py
	$(BIN)/python benchmarks/score.py
	$(BIN)/python benchmarks/train.py
	$(BIN)/python benchmarks/attention.py

check: $(STAMP)
	$(BIN)/ruff check rerank tests benchmarks data metrics
	$(BIN)/ruff format --check rerank tests benchmarks data metrics

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
