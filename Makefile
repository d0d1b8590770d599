# rtm: the two commands people need are `make run` and `make test` (see README).
# Everything else here is a step of those two, exposed for people who want one piece.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9

.PHONY: run dev test check unit integration e2e lock proto clean help install install-dev js-test

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.installed: requirements.lock pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

$(VENV)/.installed-dev: requirements-dev.lock pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed ## create .venv with the locked runtime dependencies

install-dev: $(VENV)/.installed-dev ## create .venv with runtime + development dependencies

run: install ## start the whole system (embedded NATS + PostgreSQL unless RTM_NATS_URL / RTM_DATABASE_URL are set)
	$(BIN)/rtm up

dev: install ## like run, but each service reloads when its source changes
	$(BIN)/rtm dev

test: install-dev ## the gate and the whole test suite (what CI runs)
	$(BIN)/python scripts/check
	$(MAKE) js-test
	$(BIN)/python -m pytest

check: install-dev ## format, lint, types and import contracts only
	$(BIN)/python scripts/check

unit: install-dev ## unit tests only (no I/O)
	$(BIN)/python -m pytest tests/unit

js-test: ## the TypeScript SDK (clients/js): npm ci from its lockfile, build, unit tests (node >= 20)
	cd clients/js && npm ci --no-audit --no-fund && npm test

lock: $(BIN)/uv ## re-resolve requirements*.lock from pyproject.toml
	$(BIN)/uv pip compile --quiet --python-version 3.11 pyproject.toml -o requirements.lock
	$(BIN)/uv pip compile --quiet --python-version 3.11 --extra dev pyproject.toml -o requirements-dev.lock

proto: install-dev ## regenerate the gRPC stubs from proto/
	$(BIN)/python scripts/gen_proto.py

clean: ## remove the virtual environment and local data (.rtm, and PostgreSQL's data when it lives in /var/tmp)
	@if [ -L .rtm/pg ]; then echo "removing $$(readlink -f .rtm/pg)"; rm -rf "$$(readlink -f .rtm/pg)"; fi
	rm -rf $(VENV) .rtm .mypy_cache .pytest_cache .ruff_cache
