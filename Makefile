# Each target creates .venv when missing, installs what it needs and builds the
# package with `pip install --no-build-isolation` (torch comes from the venv).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH := torch==2.13.0
SOURCES := $(shell find csrc python -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.py' \)) CMakeLists.txt pyproject.toml

.PHONY: demo test lint format bench wheel clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.deps: Makefile | $(PY)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH) numpy scipy scikit-learn tqdm matplotlib pytest scikit-build-core ninja cmake ruff==0.17.5 clang-format==23.1.3 hypothesis==6.170.17 mnist1d
	touch $@

$(VENV)/.built: $(VENV)/.deps $(SOURCES)
	$(PIP) install -q --no-build-isolation --no-deps .
	touch $@

demo: $(VENV)/.built
	mkdir -p build
	$(PY) -m unlearn compare --methods all --forget-class 3 --json build/demo.json --plot build/demo.png
	$(PY) -m unlearn compare --methods retrain,svd_projection --forget-class 3 --model vgg --quiet

test: $(VENV)/.built
	$(PY) -m pytest -q tests

CSRC := $(shell find csrc -type f \( -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' \))

# ruff (lint and format) for Python, clang-format for C++/CUDA; `make format` applies both.
lint: $(VENV)/.deps
	$(VENV)/bin/ruff check python tests benchmarks examples
	$(VENV)/bin/ruff format --check python tests benchmarks examples
	$(VENV)/bin/clang-format --dry-run --Werror $(CSRC)

format: $(VENV)/.deps
	$(VENV)/bin/ruff check --fix python tests benchmarks examples
	$(VENV)/bin/ruff format python tests benchmarks examples
	$(VENV)/bin/clang-format -i $(CSRC)

bench: $(VENV)/.built
	$(PIP) install -q xicorpy
	$(PY) benchmarks/bench_codec.py
	$(PY) benchmarks/bench_lcodec.py
	$(PY) benchmarks/bench_methods.py
	$(PY) benchmarks/bench_distributed.py

# Builds dist/*.whl, then installs it into a fresh venv and imports it.
wheel: $(VENV)/.deps
	rm -rf dist build/wheel-check
	$(PIP) wheel -q --no-build-isolation --no-deps -w dist .
	$(PYTHON) -m venv build/wheel-check
	build/wheel-check/bin/python -m pip install -q $(TORCH) numpy scipy dist/*.whl
	cd build && wheel-check/bin/python -c "import unlearn; print(unlearn.__version__, unlearn.backend())"

clean:
	rm -rf build dist $(VENV)
