# Two commands set everything up on a fresh machine:
#   make demo   -> installs into .venv (once) and runs the example job on generated data
#   make test   -> installs into .venv (once) and runs the default test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.distmi-installed
PYTEST_FLAGS ?=

export RAY_USAGE_STATS_ENABLED := 0
export RAY_AUTH_MODE := disabled

.PHONY: install demo test test-slow test-gpu lint bench bench-gmm bench-audit bench-long clean

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade -q "pip>=24"
	# torch first, pinned: on these machines it resolves to the local CPU wheel (see README for GPU).
	$(BIN)/pip install -q -c requirements/constraints.txt torch
	$(BIN)/pip install -q -c requirements/constraints.txt -e ".[dev,models,explain]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/distmi run jobs/quickstart.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not gpu" $(PYTEST_FLAGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m "slow" $(PYTEST_FLAGS)

test-gpu: $(STAMP)
	$(BIN)/python -m pytest -m "gpu" $(PYTEST_FLAGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# Reference implementations for side-by-side benchmarks live in their own venv
# (gmm-mi 0.8.2 needs scikit-learn < 1.6).
refvenv/.installed:
	$(PYTHON) -m venv refvenv
	refvenv/bin/pip install -q "gmm-mi==0.8.2" "scikit-learn<1.6"
	touch refvenv/.installed

bench-gmm: $(STAMP) refvenv/.installed
	$(BIN)/python benchmarks/bench_gmm.py --reference-python refvenv/bin/python

bench: bench-gmm $(STAMP)
	$(BIN)/python benchmarks/bench_sliced.py
	$(BIN)/python benchmarks/bench_neural.py
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_sweep.py --throughput --n-throughput 10000
	$(BIN)/python benchmarks/bench_capture.py --suite minilm
	$(BIN)/python benchmarks/bench_nif.py --parts links iris digits
	$(BIN)/python benchmarks/bench_decompose.py
	$(BIN)/python benchmarks/bench_wkl.py
	$(BIN)/python benchmarks/bench_wkl_kernels.py
	$(BIN)/python benchmarks/bench_infoplane.py --epochs 2 --ref-slices 3 --threads 2
	$(BIN)/distmi run jobs/minilm_layer_sweep.yaml
	$(BIN)/python benchmarks/bench_report.py --results out/minilm-layer-sweep

# Longer studies: the screen's false-discovery rate over 20 seeds, scale (Ray workers, memory),
# the BERT-base capture.
bench-long: $(STAMP)
	$(BIN)/python benchmarks/bench_sweep_stats.py
	$(BIN)/python benchmarks/bench_sweep_scale.py --mode workers
	$(BIN)/python benchmarks/bench_sweep_scale.py --mode memory
	$(BIN)/python benchmarks/bench_capture.py --suite bert-base

# The audit study: 20 null audits + 2 changed models of all-MiniLM-L6-v2 (hours on 2 cores),
# then the report timing on the MiniLM layer sweep (run the sweep first: distmi run jobs/minilm_layer_sweep.yaml).
bench-audit: $(STAMP)
	$(BIN)/python benchmarks/bench_audit.py --runs 20 --out out/bench-audit
	$(BIN)/python benchmarks/bench_report.py --results out/minilm-layer-sweep

clean:
	rm -rf $(VENV)
