# Entry points for people and CI. `make up` sets up and runs everything; `make test` tests it.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
RECSYS := $(VENV)/bin/recsys
UV_VERSION := 0.13.8
BUF_VERSION := v1.75.0
TOOLS_DIR := $(HOME)/.cache/recsys/tools
BUF := $(TOOLS_DIR)/buf-$(BUF_VERSION)/buf

.PHONY: help up down services-up services-down venv infra-up infra-down infra-status bootstrap proto proto-check lint test bench-ingest bench-features bench-serving bench-api bench-freshness bench-cli bench-pipelines bench-learning lock clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

up: venv infra-up bootstrap services-up ## Set up everything and run it (virtualenv, infrastructure, schemas, services; data and models on the first run)
	$(RECSYS) pipeline first-run $(FIRST_RUN_ARGS)
	$(RECSYS) services up featurestore candidates ranker experiments api
	@$(RECSYS) infra status
	@$(RECSYS) services status
	@echo
	@$(RECSYS) services endpoints
	@echo "Kafka $${RECSYS_KAFKA__PORT:-9092}, Cassandra $${RECSYS_CASSANDRA__PORT:-9042}, Redis $${RECSYS_REDIS__PORT:-6379} on 127.0.0.1."
	@echo "Prometheus: http://127.0.0.1:$${RECSYS_PROMETHEUS__PORT:-9090}/alerts (SLO and platform rules, docs/observability.md)"
	@$(RECSYS) models list
	@echo "Recommendations: curl 'http://127.0.0.1:$${RECSYS_API__PORT:-8080}/v1/recommendations/u0000001?k=5&country=US'"
	@echo "Web page: http://127.0.0.1:$${RECSYS_API__PORT:-8080}/"
	@echo "More traffic: .venv/bin/recsys simulate --rate 200 --duration 60"
	@echo "Stop everything with: make down"

down: venv ## Stop the services, then the infrastructure
	$(RECSYS) services down
	$(RECSYS) infra down

venv: $(VENV)/.synced ## Create .venv and install the pinned dependencies

$(VENV)/.synced: pyproject.toml uv.lock
	@test -x $(VENV)/bin/uv || { $(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install -q uv==$(UV_VERSION); }
	$(VENV)/bin/uv sync --frozen --quiet
	@touch $@

$(BUF):
	@echo "building buf $(BUF_VERSION) from the Go module proxy (once per machine, a few minutes)"
	GOBIN=$(dir $(BUF)) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)

infra-up: venv ## Start Kafka, Cassandra, Redis and Prometheus (no-op for those already running)
	$(RECSYS) infra up

infra-down: venv ## Stop the servers infra-up started
	$(RECSYS) infra down

infra-status: venv ## What runs where, and where its logs are
	$(RECSYS) infra status

services-up: venv ## Start the stream services (ingest, feature workers, bronze writer); wait until each is ready
	$(RECSYS) services up ingest features bronze

services-down: venv ## Stop the services services-up started
	$(RECSYS) services down

bootstrap: venv ## Create Kafka topics and apply Cassandra migrations (idempotent)
	$(RECSYS) infra bootstrap

proto: venv ## Regenerate the Python code for proto/
	$(PY) tools/gen_proto.py

proto-check: venv ## Fail if the generated code is stale
	$(PY) tools/gen_proto.py --check

lint: venv $(BUF) ## ruff, mypy, buf lint and buf breaking (against main)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(BUF) lint
	$(BUF) breaking --against '.git#branch=main'

test: lint proto-check ## Everything CI runs: lint, contracts, and the tests against real servers
	$(VENV)/bin/pytest

bench-ingest: venv ## Ingest throughput and latency against the running Kafka (BENCH_ARGS="--duration 60")
	$(PY) benchmarks/bench_ingest.py $(BENCH_ARGS)

bench-features: venv ## Feature worker: backlog events/s, then live rates with lag and freshness (BENCH_ARGS="--rates 1000,3000")
	$(PY) benchmarks/bench_features.py $(BENCH_ARGS)

bench-serving: venv ## Featurestore, candidates and ranker: client and server p50/p99, calls/s, on the real and a 100k catalog (BENCH_ARGS="--duration 10")
	$(PY) benchmarks/bench_serving.py $(BENCH_ARGS)

bench-api: venv ## Open-loop load on the running API (make up) with the simulator feeding events: latency, levels, CPU, stages (BENCH_ARGS="--rates 100,200")
	$(PY) benchmarks/bench_api.py $(BENCH_ARGS)

bench-freshness: venv ## Play a title through ingest, poll the API until the list changes: p50/p99 event to changed recommendation (BENCH_ARGS="--members 200")
	$(PY) benchmarks/bench_freshness.py $(BENCH_ARGS)

bench-pipelines: venv ## Pipelines wall time per stage (BENCH_ARGS="--dataset world --sessions 50000")
	$(PY) benchmarks/bench_pipelines.py $(BENCH_ARGS)

bench-learning: venv ## Offline quality (Recall/NDCG/MAP@10, coverage, popularity bias) and wall time of every model (BENCH_ARGS="--dataset movietweetings")
	$(PY) benchmarks/bench_learning.py $(BENCH_ARGS)

bench-cli: venv ## How fast `recsys --help` and the light commands answer, p50/p90/max (BENCH_ARGS="--runs 20")
	$(PY) benchmarks/bench_cli.py $(BENCH_ARGS)

lock: ## Re-resolve uv.lock after editing dependencies in pyproject.toml
	$(VENV)/bin/uv lock

clean: down ## Stop everything and delete its data
	rm -rf .recsys
