# terraform-provider-kargo — every task a contributor or CI needs.
# `make demo` and `make test` are the two commands a fresh clone needs.

SHELL := /bin/bash
CARGO ?= cargo
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
TARGET_DIR ?= $(CURDIR)/target
OS_ARCH := $(shell uname -s | tr A-Z a-z)_$(shell uname -m | sed -e 's/x86_64/amd64/' -e 's/aarch64/arm64/')
PLUGIN_DIR := $(HOME)/.terraform.d/plugins/registry.terraform.io/dokaseca/kargo/$(VERSION)/$(OS_ARCH)

.PHONY: all build install demo test lint fmt examples-check clean tf-check help bench testacc docs docs-check generate-steps

all: build

help:
	@echo "make demo      build, start the sandbox, apply the quickstart, show a plan-time promotion diff, promote"
	@echo "make test      everything that proves it: lint, unit, sandbox, end-to-end, examples and docs checks"
	@echo "make build     build the provider and the sandbox (debug)"
	@echo "make install   install the provider into ~/.terraform.d/plugins for 'terraform init'"
	@echo "make testacc   the examples against a real cluster (needs TF_ACC=1 and KUBECONFIG; skipped otherwise)"
	@echo "make bench     the performance budget: provider start-up, plan/apply ratios, requests, memory"
	@echo "make docs      regenerate docs/ from the schema, examples/ and templates/ (docs-check: verify)"
	@echo "make generate-steps  regenerate provider/data/step-schemas.json from Kargo's step schemas in ../shared"

# Terraform (>= 1.5) or OpenTofu must be on PATH for anything that runs it.
tf-check:
	@scripts/tf-binary >/dev/null

build:
	$(CARGO) build -p terraform-provider-kargo -p kargo-sandbox --bins

install:
	$(CARGO) build --release -p terraform-provider-kargo
	mkdir -p $(PLUGIN_DIR)
	cp $(TARGET_DIR)/release/terraform-provider-kargo $(PLUGIN_DIR)/terraform-provider-kargo_v$(VERSION)
	@echo "installed into $(PLUGIN_DIR)"

demo: tf-check build
	scripts/demo.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Unit tests, the sandbox's own suite and the end-to-end suite (real terraform against
# the sandbox). nextest runs test binaries in parallel; plain cargo test is the fallback.
test: tf-check lint build
	@[ -d "$(CURDIR)/../shared/kargo/v1.11.2/crds" ] || echo "NOTE: ../shared is absent: CRD schema checks and fixture comparisons are skipped (see SKIPPED lines with --no-capture)"
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --workspace --no-fail-fast; \
	else \
	  echo "cargo-nextest not found: using cargo test"; \
	  $(CARGO) test --workspace --no-fail-fast; \
	fi
	$(MAKE) --no-print-directory examples-check
	$(MAKE) --no-print-directory docs-check

examples-check: tf-check build
	scripts/examples-check.sh

# docs/ is generated from the schema descriptions, examples/ and templates/ by kargo-docs;
# docs-check fails (with a diff) when the committed docs/ differ from what that produces.
docs:
	$(CARGO) run -q -p kargo-docs -- generate

docs-check:
	$(CARGO) run -q -p kargo-docs -- check

# provider/data/step-schemas.json: Kargo's step config schemas (../shared), pruned to what
# validation needs. A test fails when the committed file differs while ../shared is present.
generate-steps:
	$(CARGO) run -q -p kargo-schemagen -- steps

# Apply / empty plan / destroy of the examples against a real cluster with Kargo installed,
# when TF_ACC=1 and KUBECONFIG are set (the script then builds what it runs); otherwise it
# says it is skipped and why.
testacc:
	scripts/testacc.sh

# The performance budget, measured on the release build: prints one table of times, ratios,
# request counts and memory. Informational; not part of `make test`.
bench: tf-check
	$(CARGO) build --release -p terraform-provider-kargo
	KARGO_PROVIDER_DIR=$(TARGET_DIR)/release $(CARGO) run --release -q -p kargo-e2e --bin bench

clean:
	$(CARGO) clean
	rm -rf .demo
