# IPAI integration bus. `make up` runs it, `make test` tests it. See README.md.
SHELL := /bin/bash
COMPONENTS := ingest dispatcher dispatch-cron expense-handler asset-handler finance-handler
CARGO ?= cargo

.PHONY: setup build components host migrate up test test-unit test-e2e lint fmt bench clean

## setup: toolchain target + a running local PostgreSQL
setup:
	@rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
	@scripts/ensure-postgres.sh
	@python3 -c 'import pytest, mcp, standardwebhooks, prometheus_client, requests' 2>/dev/null || python3 -m pip install -q -r requirements-dev.txt

## build: every component (.wasm) and the native binaries (local host, ipai CLI)
build: components host

components:
	$(CARGO) build --target wasm32-wasip2 --release $(addprefix -p ,$(COMPONENTS))

host:
	$(CARGO) build --release -p ipai-spin-host -p ipai-cli

## migrate: create the database if missing and apply migrations/ to DATABASE_URL
migrate: setup host
	@. scripts/env.sh && target/release/ipai migrate --database-url "$$DATABASE_URL"

## up: build, migrate, serve on LISTEN (default 127.0.0.1:3000) with spin or the local host
up: setup build
	@scripts/up.sh

## test: every test — unit, SQL and end-to-end under the local host, then under real Spin
## when a spin CLI is available (SPIN_BIN or PATH)
test: setup build
	$(CARGO) test --release --workspace
	@. scripts/env.sh; SPIN="$$(find_spin)"; \
	if [ -n "$$SPIN" ]; then \
	  echo "== end-to-end suites under real Spin ($$SPIN)"; \
	  SPIN_BIN="$$SPIN" IPAI_RUNTIME=spin $(CARGO) test --release -p ipai-tests --tests; \
	else echo "== Spin leg skipped: no spin CLI found (set SPIN_BIN or put spin on PATH)"; fi

## lint: formatting and clippy (native crates and wasm components)
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings
	$(CARGO) clippy --release --target wasm32-wasip2 $(addprefix -p ,$(COMPONENTS)) -- -D warnings

fmt:
	$(CARGO) fmt --all

## bench: ingest throughput/latency under each available runtime → target/bench/report.json
bench: setup build
	@scripts/bench.sh

clean:
	$(CARGO) clean
