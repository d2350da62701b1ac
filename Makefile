# flwr-stellar: `make demo` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Re-install only when the dependency list changes (a second `make test` installs nothing).
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
FMNIST_DIR ?= /usr/share/datasets/fashion-mnist
FMNIST_FILE := $(FMNIST_DIR)/train-images-idx3-ubyte.gz
PYTEST_ARGS ?=
DEMO_ARGS ?= attack=hostile   # the demo federation has two hostile nodes (conf/attack/)
export FLWR_TELEMETRY_ENABLED := 0

.PHONY: install dataset browser js demo docs test test-fast bench lint flwr-run clean

install: $(STAMP)

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "flwr-stellar needs Python 3.11"' \
		|| { echo "Python 3.11 is required (set PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch/torchvision first, with pip, from the pinned releases (the machines' own wheels), then the project.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet torch==2.14.1 torchvision==0.29.1
	$(PIP) install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# Fashion-MNIST from Debian's dataset-fashion-mnist; no silent fallback to fake data.
dataset:
	@if [ -f "$(FMNIST_FILE)" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	elif sudo -n true 2>/dev/null; then SUDO="sudo"; \
	else echo "Fashion-MNIST is missing ($(FMNIST_FILE)). Run:"; \
	     echo "    sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist"; \
	     echo "or point FMNIST_DIR / dataset.root at a folder holding the four IDX files."; exit 1; fi; \
	echo "Installing Debian package dataset-fashion-mnist ..."; \
	$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist

# Chromium for the report's browser test (Debian package, like the dataset).
browser:
	@if command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	elif sudo -n true 2>/dev/null; then SUDO="sudo"; \
	else echo "Chromium is missing (the HTML report test opens the page in it). Run:"; \
	     echo "    sudo apt-get update && sudo apt-get install -y chromium"; exit 1; fi; \
	echo "Installing Debian package chromium ..."; \
	$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium

# The official Stellar JS SDK for the Horizon conformance test (pinned in tests/js/package-lock).
JS_STAMP := tests/js/node_modules/.installed-$(shell cat tests/js/package-lock.json | sha256sum | cut -c1-12)
js: $(JS_STAMP)

$(JS_STAMP): tests/js/package.json tests/js/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm is missing: install Node.js 20+ (Debian: nodejs npm)"; exit 1; }
	cd tests/js && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	rm -f tests/js/node_modules/.installed-*
	touch $@

demo: install dataset
	$(PY) -m flwr_stellar.app.experiment $(DEMO_ARGS) $(ARGS)

# The manual (docs/, mkdocs.yml) into site/: any warning fails it (broken links or anchors, pages
# missing from the nav, docstrings mkdocstrings cannot read). Nothing is fetched from the network.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

test: install dataset browser js docs
	$(PY) -m pytest -q --durations=15 $(PYTEST_ARGS)

test-fast: install dataset
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: install dataset
	cd benchmarks && $(abspath $(PY)) bench_baseline.py && $(abspath $(PY)) bench_signing.py \
		&& $(abspath $(PY)) bench_identity.py && $(abspath $(PY)) bench_ledger.py \
		&& $(abspath $(PY)) bench_ledger_strategy.py && $(abspath $(PY)) bench_screening.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy    # strict on the library and strategies/ (pyproject [tool.mypy])

# `flwr run .` on a local simulation federation (config in .flwr-home/, see docs/configuration.md).
flwr-run: install dataset
	$(VENV)/bin/flwr-stellar flwr-run $(ARGS)

clean:
	rm -rf $(VENV) outputs multirun site .flwr-home .pytest_cache .ruff_cache .hypothesis
