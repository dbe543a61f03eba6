# Accueil — the two commands of the README, and a few helpers.
# Only Python 3.11 and git are needed: uv is installed into a local tool folder on first use.

SHELL := /bin/bash
UV_DIR := .tools
UV := $(UV_DIR)/bin/uv
UV_VERSION := 0.13.8
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format bench migrate clean

$(UV):
	python3 -m venv $(UV_DIR)
	$(UV_DIR)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# The app alone: no test tools, no C++ build (the embedded GGUF provider is the `embedded` extra).
# --inexact keeps what `make test` installed, so the two targets do not undo each other.
.venv/.synced-app: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --no-dev --inexact
	touch $@

# Everything: the app, the test tools and the `embedded` extra (llama.cpp builds once, then uv caches it).
.venv/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-extras
	touch $@ .venv/.synced-app

## run: install, migrate, seed the demo practice (once) and serve on http://127.0.0.1:8000
run: .venv/.synced-app
	$(UV) run --no-sync accueil db upgrade
	$(UV) run --no-sync accueil demo seed
	$(UV) run --no-sync accueil serve --host $(HOST) --port $(PORT)

## test: install the test dependencies and run the whole suite (lint included)
test: .venv/.synced
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync mypy
	$(UV) run --no-sync pytest -n 2

lint: .venv/.synced
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync mypy

format: .venv/.synced
	$(UV) run --no-sync ruff check --fix .
	$(UV) run --no-sync ruff format .

bench: .venv/.synced
	$(UV) run --no-sync python -m benchmarks

clean:
	rm -rf .venv $(UV_DIR) .pytest_cache .ruff_cache
