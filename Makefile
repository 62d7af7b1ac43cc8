# edgeroll developer entry points. The README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV       := .venv
PY         := $(VENV)/bin/python
BIN_DIR    := $(shell hack/build-binaries.sh --print-bin)
export EDGEROLL_BIN_DIR := $(BIN_DIR)
export EDGEROLL_NPM_BIN := $(HOME)/.cache/edgeroll/npm/node_modules/.bin
export PATH := $(abspath $(VENV))/bin:$(BIN_DIR):$(PATH)
PYTEST     := $(PY) -m pytest

.PHONY: help setup kind-setup image lint typecheck crds crds-check unit integration e2e e2e-kind reliability test \
        lab-up lab-down lab-status demo demo-down bench bench-edge bench-publish bench-propagation bench-propagation-kind bench-fanout \
        bench-failover

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup: ## install everything: venv, k8s/etcd/kwok/helm built from the Go proxy, SeaweedFS, nginx, wrk, wgc
	@hack/setup.sh

kind-setup: setup ## Docker engine, kind and its node image (stock, or built here from the registries)
	@hack/kind-setup.sh

image: ## the container image: wheels built here, `docker build` offline; EDGEROLL_IMAGE (localhost:5000/edgeroll:dev)
	@hack/build-image.sh

lint: setup ## ruff
	$(VENV)/bin/ruff check operator tests bench
	$(VENV)/bin/ruff format --check operator tests bench

typecheck: setup ## mypy --strict on the package
	$(VENV)/bin/mypy

crds: setup ## regenerate crds/, the chart's crds/ and docs/reference.md from the pydantic models
	$(PY) -m edgeroll.cli crds --write crds --write charts/edgeroll/crds
	$(PY) -m edgeroll.cli crds --reference docs/reference.md

crds-check: ## fail when crds/, the chart's crds/ or docs/reference.md differ from the models (unit tests check it too)
	$(PY) -m edgeroll.cli crds --check crds --check charts/edgeroll/crds --check-reference docs/reference.md

unit: setup ## pure tests, no processes
	$(PYTEST) -m unit

integration: setup ## real S3 and real apiservers (starts or reuses the lab); no fault injection
	$(PYTEST) -m "integration and not reliability"

e2e: setup ## operator + lab end to end
	$(PYTEST) -m "e2e and not kind"

e2e-kind: kind-setup image ## the scenarios and the rollout suite on a hub + 3 edge kind clusters with real pods (docs/e2e.md)
	@hack/e2e-kind.sh

reliability: setup ## fault injection on the lab (over 10 minutes, so its own target; CI runs it after `make test`)
	$(PYTEST) -m reliability

test: setup ## ruff, mypy, unit, integration and e2e (`make reliability` is the fault-injection suite)
	$(VENV)/bin/ruff check operator tests bench
	$(VENV)/bin/ruff format --check operator tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PYTEST) -m unit
	$(PYTEST) -m "(integration or e2e) and not reliability and not kind"

lab-up: setup ## start (or reuse) the hub + 3 edge clusters + S3
	$(PY) -m edgeroll.cli lab up

lab-down: ## stop exactly what the lab started
	$(PY) -m edgeroll.cli lab down

lab-status: ## health of every lab component
	$(PY) -m edgeroll.cli lab status

# `make demo REPLICAS=2`: that many operator processes, sharing SHARDS shards (default: one each).
REPLICAS ?= 1
SHARDS   ?= $(REPLICAS)

demo: setup ## the whole job: lab, CRDs, operator(s) (REPLICAS=1, SHARDS), example EdgeClusters and RouterConfigs, fetch from each edge
	@REPLICAS=$(REPLICAS) SHARDS=$(SHARDS) hack/demo.sh up

demo-down: ## stop the demo operators and the lab
	@hack/demo.sh down

bench: bench-edge bench-publish bench-propagation bench-fanout bench-failover ## all benchmarks

bench-edge: setup ## edge cache vs nginx under wrk
	$(PY) bench/edge_serving.py

bench-publish: setup ## render+sign+upload of 2 MB vs bare put_object
	$(PY) bench/publish.py

bench-propagation: setup ## apply -> every edge serves the new digest, vs a CDN poll loop
	$(PY) bench/propagation.py

bench-propagation-kind: kind-setup image ## apply -> every real cache pod serves it, through the Service, on kind (SWITCH=InPlace|Restart)
	$(PY) bench/propagation.py --provider kind --updates 10 --revision-switch $(or $(SWITCH),InPlace)

bench-fanout: setup ## 100 EdgeClusters x 20 RouterConfigs
	$(PY) bench/fanout.py

bench-failover: setup ## 2 replicas: kill -9 of the shard holder mid-rollout, 20 times; kill -> next wave
	$(PY) bench/failover.py
