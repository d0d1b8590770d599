# rtm: the two commands people need are `make run` and `make test` (see README).
# Everything else here is a step of those two, exposed for people who want one piece.
SHELL := /bin/bash
# The Python .venv is made with: a command, a path or a version (PYTHON=3.13); README, "Choosing a
# Python". A .venv made by another version is made again.
PYTHON ?= python3
# The Pythons rtm supports (requires-python and the classifiers in pyproject.toml say the same;
# tests/unit/test_supported_pythons.py keeps them in step). The lock files hold for all of them.
PYTHONS := 3.11 3.12 3.13
# `make test` also runs the unit and integration tiers on these, each in its own .venv-<version>;
# unset, every supported Python other than .venv's. `make test TEST_PYTHONS=` skips them.
TEST_PYTHONS ?= $(filter-out $(shell cat $(VENV)/.python 2>/dev/null),$(PYTHONS))
VENV ?= .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9

.PHONY: run dev test tiers check unit integration e2e lock proto clean help install install-dev FORCE js-test web web-soft chromium

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# Runs every time; (re)makes $(VENV) with $(PYTHON) and rewrites .python (the version) only when
# $(VENV) is missing or was made by another version, so what depends on it is redone only then.
$(VENV)/.python: FORCE
	@scripts/venv "$(VENV)" "$(PYTHON)" $(PYTHONS)

$(BIN)/uv: $(VENV)/.python
	$(BIN)/pip install --quiet "uv==$(UV_VERSION)"
	@touch $@

$(VENV)/.installed: requirements.lock pyproject.toml $(VENV)/.python | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

$(VENV)/.installed-dev: requirements-dev.lock pyproject.toml $(VENV)/.python | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed ## create .venv with the locked runtime dependencies

install-dev: $(VENV)/.installed-dev ## create .venv with runtime + development dependencies

run: install web-soft ## start the whole system (embedded NATS + PostgreSQL unless RTM_NATS_URL / RTM_DATABASE_URL are set)
	$(BIN)/rtm up

dev: install web-soft ## like run, but each service reloads when its source changes
	$(BIN)/rtm dev

test: install-dev chromium ## the gate, the whole suite, and unit + integration on the other Pythons alongside (CI)
	$(BIN)/python scripts/check
	$(MAKE) js-test
	@for version in $(TEST_PYTHONS); do \
	    $(MAKE) --no-print-directory install-dev VENV=.venv-$$version PYTHON=$$version || exit 1; \
	done
	$(BIN)/python scripts/test-pythons $(TEST_PYTHONS)

tiers: install-dev ## unit and integration tiers only (with VENV and PYTHON: on another Python)
	$(BIN)/python -m pytest tests/unit tests/integration

check: install-dev ## format, lint, types and import contracts only
	$(BIN)/python scripts/check

unit: install-dev ## unit tests only (no I/O)
	$(BIN)/python -m pytest tests/unit

# The web chat page (clients/web) that `rtm up` serves at auth's /chat/: the SDK built (clients/js),
# then the page bundled by esbuild into clients/web/dist, both from their lockfiles. Redone only
# when a source changed. `run` and `dev` build it when node and npm are there, and go on without
# it (the banner says how to build it) when they are not.
WEB_SOURCES := $(wildcard clients/web/src/* clients/js/src/*.ts clients/js/api/*.json) \
	clients/web/package-lock.json clients/web/build.mjs clients/web/tsconfig.json clients/js/package-lock.json

clients/web/dist/index.html: $(WEB_SOURCES)
	cd clients/js && npm ci --no-audit --no-fund && npm run build
	cd clients/web && npm ci --no-audit --no-fund && npm run build

web: clients/web/dist/index.html ## build the web chat page (node >= 20 and npm)

web-soft:
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory web; \
	else echo "npm not found: the web chat page is not built (install node >= 20, then make web)"; fi

# Debian's chromium, which tests/e2e/test_web_page.py drives with Playwright (Playwright never
# downloads a browser of its own); without apt-get as root that test is skipped, saying why.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	    if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	        apt-get install -y chromium || { apt-get update && apt-get install -y chromium; } \
	        || echo "chromium could not be installed: tests/e2e/test_web_page.py will be skipped"; \
	    else echo "no /usr/bin/chromium and no apt-get as root: tests/e2e/test_web_page.py will be skipped"; fi; \
	fi

js-test: ## the TypeScript SDK (clients/js) and the web page (clients/web): npm ci from their lockfiles, build, unit tests (node >= 20)
	cd clients/js && npm ci --no-audit --no-fund && npm test
	cd clients/web && npm ci --no-audit --no-fund && npm test

# One lock for every supported Python (--universal: markers where they differ), resolved from the
# oldest; the existing files are kept as preferences, so nothing is upgraded that need not be.
lock: $(BIN)/uv ## re-resolve requirements*.lock from pyproject.toml
	$(BIN)/uv pip compile --quiet --universal --python-version $(firstword $(PYTHONS)) pyproject.toml -o requirements.lock
	$(BIN)/uv pip compile --quiet --universal --python-version $(firstword $(PYTHONS)) --extra dev pyproject.toml -o requirements-dev.lock

proto: install-dev ## regenerate the gRPC stubs from proto/
	$(BIN)/python scripts/gen_proto.py

clean: ## remove the virtual environments and local data (.rtm, and PostgreSQL's data when it lives in /var/tmp)
	@if [ -L .rtm/pg ]; then pg="$$(readlink -f .rtm/pg)"; echo "removing $$pg"; rm -rf "$$pg" "$$pg.owner"; fi
	rm -rf $(VENV) $(foreach version,$(PYTHONS),.venv-$(version)) .rtm .mypy_cache .pytest_cache .ruff_cache
