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

.venv/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen
	touch $@

## run: install, migrate, seed the demo practice (once) and serve on http://127.0.0.1:8000
run: .venv/.synced
	$(UV) run --frozen accueil db upgrade
	$(UV) run --frozen accueil demo seed
	$(UV) run --frozen accueil serve --host $(HOST) --port $(PORT)

## test: install the test dependencies and run the whole suite (lint included)
test: .venv/.synced
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy
	$(UV) run --frozen pytest -n 2

lint: .venv/.synced
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

format: .venv/.synced
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

bench: .venv/.synced
	$(UV) run --frozen python -m benchmarks

clean:
	rm -rf .venv $(UV_DIR) .pytest_cache .ruff_cache
