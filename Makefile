# Set-up and everyday commands. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Portable llama.cpp build: the native build segfaults on some CPUs. OpenMP is off because libgomp throttles its
# spinning threads once a server's worker thread drives the model, which cut decoding by a third on 2 cores;
# ggml's own thread pool has no such penalty. Built without pip's cache so these flags always apply.
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
	-DGGML_OPENMP=OFF
EXAMPLE ?= examples/bank
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint typecheck browser-deps benchmarks clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet --no-cache-dir "llama-cpp-python==$(LLAMA_CPP_VERSION)"
	$(BIN)/pip install --quiet -e '.[dev,teacher]'
	$(BIN)/chatwright models prepare
	touch $(STAMP)

run: install
	$(BIN)/chatwright ingest $(EXAMPLE)
	$(BIN)/chatwright serve $(EXAMPLE) --host $(HOST) --port $(PORT)

# Browser tests drive Debian's Chromium; install it when missing.
browser-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)

test: install browser-deps
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest

lint:
	$(BIN)/ruff check src tests benchmarks

typecheck:
	$(BIN)/mypy

benchmarks: install
	$(BIN)/python -m benchmarks.rag_squad2 --data ../shared/data/squad2
	$(BIN)/python -m benchmarks.latency --project $(EXAMPLE)

clean:
	rm -rf $(VENV) build dist src/*.egg-info
