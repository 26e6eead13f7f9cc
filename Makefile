# The verbs CI and the README use. Each target installs what it needs itself.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export UV_COMPILE_BYTECODE := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: install test-tools stack-tools demo serve up down status test test-cluster test-unit test-integration lint format clean
HOST ?= 127.0.0.1
PORT ?= 8000

$(VENV)/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || { echo "installing uv with pip"; python3 -m pip install --quiet uv; }
	$$(command -v uv || echo python3 -m uv) sync --frozen --compile-bytecode
	@touch $@

install: $(VENV)/.installed ## create .venv and install the locked dependencies

# Debian packages the integration tests drive for real: chromium opens the drift report and, with no
# network, /docs; redis-server and postgresql carry the scale-out profile (each test session starts
# its own on a free port).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq
test-tools: stack-tools
	@command -v chromium >/dev/null 2>&1 || { echo "installing Debian's chromium (the browser tests: the drift report, /docs offline)"; \
		$(APT_INSTALL) chromium >/dev/null; }
# Prometheus (scrapes serving and the drift gauges; its alert rules are tested with promtool);
# redis-server and postgresql: the scale-out profile's stores, which `make up` starts on this machine.
stack-tools:
	@command -v redis-server >/dev/null 2>&1 || { echo "installing Debian's redis-server (the scale-out profile's online store)"; \
		$(APT_INSTALL) redis-server >/dev/null; }
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { echo "installing Debian's postgresql (the scale-out profile's registries)"; \
		$(APT_INSTALL) postgresql >/dev/null; }
	@command -v prometheus >/dev/null 2>&1 || { echo "installing Debian's prometheus"; $(APT_INSTALL) prometheus >/dev/null; }
	@command -v haproxy >/dev/null 2>&1 || { echo "installing Debian's haproxy (the balancer in front of serving replicas)"; \
		$(APT_INSTALL) haproxy >/dev/null; }
	@command -v hey >/dev/null 2>&1 || { echo "installing Debian's hey (load for the replica tests and bench/serving.py)"; \
		$(APT_INSTALL) hey >/dev/null; }

demo: install ## the main job: prepare the real flights data, apply the Feast repo, load the online store
	$(VENV)/bin/featureloop demo

serve: install ## the serving app on $(HOST):$(PORT) (needs a champion: run `make demo` first)
	$(VENV)/bin/uvicorn serving.app:create_app --factory --host $(HOST) --port $(PORT) --workers 1

up: install stack-tools ## start Prefect server + deployments, MLflow UI, serving, Prometheus, the dashboard; print their URLs
	$(VENV)/bin/featureloop up

down: ## stop exactly what `make up` started
	$(VENV)/bin/featureloop down

status: ## what `make up` started and whether it is healthy
	$(VENV)/bin/featureloop status

test: install test-tools ## the test suite but the scale-out stack's, a module at a time on each of the machine's cores
	$(PY) -m pytest --numprocesses auto --dist loadfile -m "not cluster"

test-cluster: install test-tools ## the scale-out stack's tests: Redis, PostgreSQL, the MLflow and Prefect servers, workers, replicas, Ray
	$$(command -v uv || echo python3 -m uv) sync --frozen --compile-bytecode --extra ray
	$(PY) -m pytest --numprocesses auto --dist loadfile -m cluster tests/integration

test-unit: install
	$(PY) -m pytest tests/unit

test-integration: install test-tools
	$(PY) -m pytest tests/integration

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf data/offline data/versions data/feast .pytest_cache .mypy_cache .ruff_cache
