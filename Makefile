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
HELM_VERSION := v3.22.0
HELM := $(TOOLS_DIR)/helm-$(HELM_VERSION)/helm
KUBECONFORM_VERSION := v0.8.0
KUBECONFORM := $(TOOLS_DIR)/kubeconform-$(KUBECONFORM_VERSION)/kubeconform
# The deployment checks (tests/deploy) find the Go tools through these.
export RECSYS_HELM := $(HELM)
export RECSYS_KUBECONFORM := $(KUBECONFORM)

.PHONY: help tools dashboards dashboards-check k8s-schemas load up down services-up services-down venv infra-up infra-down infra-status bootstrap proto proto-check lint test bench-ingest bench-features bench-serving bench-api bench-freshness bench-cli bench-pipelines bench-learning lock clean

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

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

$(VENV)/.synced: pyproject.toml uv.lock $(wildcard services/*/pyproject.toml)
	@test -x $(VENV)/bin/uv || { $(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install -q uv==$(UV_VERSION); }
	$(VENV)/bin/uv sync --frozen --all-packages --all-extras --quiet
	@touch $@

$(BUF):
	@echo "building buf $(BUF_VERSION) from the Go module proxy (once per machine, a few minutes)"
	GOBIN=$(dir $(BUF)) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)

$(HELM):
	@echo "building helm $(HELM_VERSION) from the Go module proxy (once per machine, a few minutes)"
	GOBIN=$(dir $(HELM)) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

$(KUBECONFORM):
	@echo "building kubeconform $(KUBECONFORM_VERSION) from the Go module proxy (once per machine)"
	GOBIN=$(dir $(KUBECONFORM)) go install github.com/yannh/kubeconform/cmd/kubeconform@$(KUBECONFORM_VERSION)

tools: $(BUF) $(HELM) $(KUBECONFORM) ## Build the Go tools the checks use (buf, helm, kubeconform), once per machine

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

dashboards: venv ## Regenerate the Grafana dashboards' JSON (charts/recsys/files/dashboards) from tools/dashboards.py
	$(PY) tools/dashboards.py

dashboards-check: venv ## Fail if the committed dashboards' JSON is stale
	$(PY) tools/dashboards.py --check

lint: venv $(BUF) ## ruff, mypy, buf lint and buf breaking (against main)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(BUF) lint
	$(BUF) breaking --against '.git#branch=main'

test: lint proto-check dashboards-check tools ## Everything CI runs: lint, contracts, and the tests against real servers
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

k8s-schemas: venv ## Rewrite tests/deploy/schemas (the Kubernetes and CRD JSON schemas kubeconform checks the chart against)
	$(PY) tools/k8s_schemas.py

load: venv ## Locust against the running system (make up): members open the app, play, rate; SLO gate; reports in .recsys/load (LOAD_ARGS="--users 200 --run-time 5m")
	@mkdir -p .recsys/load
	$(VENV)/bin/locust --config load/locust.conf \
		--host http://127.0.0.1:$${RECSYS_API__PORT:-8080} \
		--ingest-host http://127.0.0.1:$${RECSYS_INGEST__PORT:-8081} $(LOAD_ARGS)
	@echo "Reports: .recsys/load/report.html and .recsys/load/recsys_*.csv"

lock: ## Re-resolve uv.lock after editing a pin (root pyproject.toml) or a service's list (services/<name>/pyproject.toml)
	$(VENV)/bin/uv lock

clean: down ## Stop everything and delete its data
	rm -rf .recsys

# --- Kubernetes on kind (docs/kubernetes.md), for a machine with Docker ------------------------
# The development machines have no container engine: these targets are checked with stub tools
# (tests/deploy/test_images.py), never run there.
KIND_CLUSTER := recsys
KIND_CONTEXT := kind-$(KIND_CLUSTER)
# prometheus-community/kube-prometheus-stack, pinned; bump deliberately (its CRDs come with it).
KUBE_PROMETHEUS_STACK_VERSION := 88.1.3

# Fail before touching anything when a tool is missing, naming every missing one.
define require-tools
@missing=""; for tool in $(1); do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
if [ -n "$$missing" ]; then echo "missing on PATH:$$missing (install them: docs/kubernetes.md, 'Tools')" >&2; exit 1; fi
endef

.PHONY: kind-up kind-load deploy kind-down

kind-up: ## Create the kind cluster `recsys` and install kube-prometheus-stack (Prometheus, Grafana) into it
	$(call require-tools,docker kind kubectl helm skaffold)
	@docker info >/dev/null 2>&1 || { echo "docker is installed but its daemon does not answer (is it running?)" >&2; exit 1; }
	@if kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)'; then \
		echo "kind cluster $(KIND_CLUSTER) already exists"; \
	else \
		kind create cluster --name $(KIND_CLUSTER) --config deploy/kind/kind-config.yaml --wait 120s; \
	fi
	helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update
	helm repo update prometheus-community
	helm upgrade --install kube-prometheus-stack prometheus-community/kube-prometheus-stack \
		--version $(KUBE_PROMETHEUS_STACK_VERSION) --kube-context $(KIND_CONTEXT) \
		--namespace monitoring --create-namespace \
		--values deploy/kind/kube-prometheus-stack-values.yaml --wait --timeout 10m
	@echo "Cluster $(KIND_CLUSTER) is up (context $(KIND_CONTEXT)). Next: make deploy"

kind-load: ## Build every image with skaffold and load it into the kind cluster (make deploy does this too)
	$(call require-tools,docker kind skaffold)
	@tags=$$(skaffold build --kube-context $(KIND_CONTEXT) --push=false --quiet \
		--output='{{range .Builds}}{{.Tag}} {{end}}') || exit 1; \
	for tag in $$tags; do kind load docker-image --name $(KIND_CLUSTER) "$$tag" || exit 1; done

deploy: ## skaffold run into kind: build, load, install charts/recsys, forward the API, Grafana, Locust (`skaffold dev` to iterate)
	$(call require-tools,docker kind kubectl helm skaffold)
	skaffold run --kube-context $(KIND_CONTEXT) --port-forward=user $(SKAFFOLD_ARGS)

kind-down: ## Delete the kind cluster `recsys` and everything in it
	$(call require-tools,kind)
	kind delete cluster --name $(KIND_CLUSTER)
