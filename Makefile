# Two commands for a fresh machine:
#   make run    set up .venv if missing, install, build the index if needed, start the chat page
#   make test   the same set-up plus test tools and chromium, then the whole suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test install index bench bench-shared bench-scale bench-million calibrate chromium services clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, pinned: it is the CPU build on this machine's disk (a plain `torch` pulls CUDA).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

install: $(VENV)/.installed

index: install
	$(BIN)/pht-assistant index

run: index
	@echo "Starting the chat page: open http://localhost:$(PORT) in your browser (Ctrl-C stops it)."
	$(BIN)/streamlit run ui/app.py --server.headless true --server.address 127.0.0.1 \
		--server.port $(PORT) --browser.gatherUsageStats false \
		--client.toolbarMode minimal

chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# PostgreSQL and Redis for the tests (they start and stop their own servers on free loopback ports)
services:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq postgresql >/dev/null; }
	@command -v redis-server >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server >/dev/null; }

test: $(VENV)/.installed-test chromium services
	$(BIN)/python -m pytest

# the naive LangChain stack the benchmark compares against (langchain-huggingface, langchain-chroma)
$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[bench]'
	@touch $@

# a few minutes: both stacks side by side, the API, synthetic corpora of 1k and 10k chunks
bench: $(VENV)/.installed-bench services
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/shared_state.py

# the API with the embedded registry against PostgreSQL + Redis at 16 clients, and propagation between workers
bench-shared: $(VENV)/.installed services
	$(BIN)/python benchmarks/shared_state.py

# adds 100k chunks: builds that store once (5-10 minutes here; kept in benchmarks/results/scale/)
bench-scale: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench.py --scale 1000,10000,100000

# a million chunks beside 1k and 100k: the readers' arrays made once straight from the synthetic
# corpus (its Chroma store would take hours to fill here; docs/performance.md, "A million chunks")
bench-million: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench.py --only-scale --scale 1000000 --readers-only 1000000 --prepare-only
	$(BIN)/python benchmarks/bench.py --only-scale --scale 1000,100000,1000000 --readers-only 1000000 --runs 3

calibrate: install
	$(BIN)/python benchmarks/calibrate.py --json docs/calibration.json

clean:
	rm -rf data .pytest_cache
