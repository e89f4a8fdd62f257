# airflow-feedback-loop: every target installs what it needs (uv + uv.lock) on a machine with Python and make.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
BOOTSTRAP := .local/bootstrap
UV := $(shell command -v uv 2>/dev/null || echo $(BOOTSTRAP)/bin/uv)
RUN := $(UV) run --locked --no-sync
PYTEST_ARGS ?=
# `make up EXECUTOR=celery` (also demo and test): Airflow's CeleryExecutor with a Redis broker and two
# workers instead of the LocalExecutor; the Celery e2e tests run on Celery whatever it says.
EXECUTOR ?= $(or $(FEEDBACK_LOOP_EXECUTOR),local)
export FEEDBACK_LOOP_EXECUTOR := $(EXECUTOR)

.PHONY: help install test test-fast chromium redis demo up down lint format bench soak clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(BOOTSTRAP)/bin/uv:
	@echo "installing uv $(UV_VERSION) into $(BOOTSTRAP) ..."
	@python3 -m venv $(BOOTSTRAP)
	@$(BOOTSTRAP)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# Bytecode is compiled at install (as installing a wheel does): where PYTHONDONTWRITEBYTECODE is set, every
# process would otherwise compile Airflow and our modules from source on each import (docs/benchmarks.md).
install: $(if $(filter $(BOOTSTRAP)/bin/uv,$(UV)),$(BOOTSTRAP)/bin/uv) ## create .venv from uv.lock
	@$(UV) sync --locked --all-extras --quiet --compile-bytecode
	@$(RUN) python -m compileall -q include dags plugins bench

test: install chromium redis ## run the whole test suite (starts its own PostgreSQL and Redis if none answers)
	@$(RUN) pytest $(PYTEST_ARGS)

test-fast: install ## unit and DAG tests only (a few minutes; `make test` is the full suite)
	@$(RUN) pytest -m "unit or dags" $(PYTEST_ARGS)

# The dashboard test renders the page in Debian's headless Chromium. Installed here when missing and we
# are root; otherwise say so (the test itself then fails with the reason, it is never skipped).
CHROMIUM := /usr/bin/chromium
chromium: ## install Debian's chromium for the dashboard browser test (root only, when missing)
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing chromium for the dashboard browser test ..."; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else \
	    echo "$(CHROMIUM) is missing and this is not root: install Debian's chromium package," \
	         "or tests/e2e/test_dashboard_browser.py will fail" >&2; \
	  fi; \
	fi

# The CeleryExecutor's broker: the Redis on 127.0.0.1:6379, else a throwaway redis-server the stack starts
# (feedback_loop.lab.celery_stack). Debian's package is installed here when neither is there and we are root.
redis: ## install Debian's redis-server for the Celery stack (root only, when no Redis answers and none is installed)
	@if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && ! command -v redis-server >/dev/null; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing redis-server for the CeleryExecutor stack ..."; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server; \
	  else \
	    echo "no Redis on 127.0.0.1:6379 and no redis-server installed, and this is not root: install" \
	         "Debian's redis-server package, or the Celery e2e tests will fail" >&2; \
	  fi; \
	fi

demo: install ## run the loop on the bundled digits data set
	@$(RUN) python -m feedback_loop.lab.demo

up: install $(if $(filter celery,$(EXECUTOR)),redis) ## start PostgreSQL + Airflow on 127.0.0.1 (EXECUTOR=celery: + Redis, 2 Celery workers)
	@$(RUN) python -m feedback_loop.lab.stack up

down: install ## stop everything `make up` or `make demo` started
	@$(RUN) python -m feedback_loop.lab.stack down

lint: install ## ruff, ruff format --check, the import rules (import-linter) and declared dependencies (deptry)
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .
	@$(RUN) lint-imports --no-cache
	@$(RUN) deptry include

format: install ## apply ruff format and safe fixes
	@$(RUN) ruff check --fix .
	@$(RUN) ruff format .

bench: install ## run the benchmarks and print figures and ratios
	@$(RUN) python -m bench

soak: install ## the reliability tests at full size (>= 1,000 fuzz requests, restarts, kills) with figures
	@$(RUN) python -m bench soak

clean: down ## remove local state (.local/, demo-output/)
	@rm -rf .local demo-output
