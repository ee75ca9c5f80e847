# terraform-provider-kargo — every task a contributor or CI needs.
# `make demo` and `make test` are the two commands a fresh clone needs.

SHELL := /bin/bash
CARGO ?= cargo
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
TARGET_DIR ?= $(CURDIR)/target
PROVIDER_BIN := $(TARGET_DIR)/debug/terraform-provider-kargo
SANDBOX_BIN := $(TARGET_DIR)/debug/kargo-sandbox
OS_ARCH := $(shell uname -s | tr A-Z a-z)_$(shell uname -m | sed -e 's/x86_64/amd64/' -e 's/aarch64/arm64/')
PLUGIN_DIR := $(HOME)/.terraform.d/plugins/registry.terraform.io/dokaseca/kargo/$(VERSION)/$(OS_ARCH)

.PHONY: all build install demo test lint fmt examples-check clean tf-check help

all: build

help:
	@echo "make demo      build, start the sandbox, apply the quickstart, show a plan-time promotion diff, promote"
	@echo "make test      everything that proves it: lint, unit, sandbox, end-to-end and examples checks"
	@echo "make build     build the provider and the sandbox (debug)"
	@echo "make install   install the provider into ~/.terraform.d/plugins for 'terraform init'"

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
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --workspace --no-fail-fast; \
	else \
	  echo "cargo-nextest not found: using cargo test"; \
	  $(CARGO) test --workspace --no-fail-fast; \
	fi
	$(MAKE) --no-print-directory examples-check

examples-check: tf-check build
	scripts/examples-check.sh

clean:
	$(CARGO) clean
	rm -rf .demo
