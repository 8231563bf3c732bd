# Plugboard: the two commands a newcomer needs are `make dev` and `make test`.
# Everything else is installed by the project's own files (uv.lock, pinned uv).

SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
export UV_PYTHON_PREFERENCE := only-system

.DEFAULT_GOAL := help
.PHONY: help install dev test lint fmt typecheck schemas bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

install: $(UV) node_modules/.plugboard-installed ## Install the locked environments (.venv, node_modules)
	$(UV) sync --frozen --all-packages

# npm ci only when node_modules is missing or package-lock.json changed since; without
# npm the stack still runs, only the tests that start the OAuth server process fail
node_modules/.plugboard-installed: package-lock.json package.json
	@if command -v npm >/dev/null; then npm ci --no-audit --no-fund && touch $@; \
	else echo "npm not found: install Node.js 20+ for the OAuth server the tests start" >&2; fi

dev: install ## Start the whole stack locally (embedded Postgres + broker + every service)
	$(UV) run --frozen plugboard dev

test: install ## Run the whole test suite (real Postgres, real Kafka-protocol broker)
	$(UV) run --frozen pytest

lint: install ## ruff check, ruff format --check, pyright
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen pyright

fmt: install ## Format and auto-fix
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

schemas: install ## Export the event JSON Schemas and asyncapi.yaml (refuses breaking changes)
	$(UV) run --frozen python -m plugboard_contracts.export_schemas

bench: install ## Run the benchmarks (each prints JSON; installs wrk with apt-get when missing)
	@command -v wrk >/dev/null || { sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$sudo apt-get update && $$sudo apt-get install -y wrk; }
	$(UV) run --frozen python bench/outbox_relay.py
	$(UV) run --frozen python bench/http_path.py
	$(UV) run --frozen python bench/vault.py
	$(UV) run --frozen python bench/registry.py
	$(UV) run --frozen python bench/refresh_storm.py
	$(UV) run --frozen python bench/expiry_propagation.py

clean: ## Remove the environment and the dev state
	rm -rf .venv $(TOOLS) .plugboard
