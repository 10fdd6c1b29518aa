# IPAI integration bus. `make up` runs it, `make test` tests it. See README.md.
SHELL := /bin/bash
COMPONENTS := ingest dispatcher dispatch-cron expense-handler asset-handler finance-handler reconcile-handler mcp ops approvals
# Components only the tests run (tests/fixtures/).
TEST_FIXTURES := echo-headers outbound-probe timer-probe
CARGO ?= cargo

.PHONY: setup build components host migrate up dev-secrets-check test conformance spin-cli lint fmt bench deploy clean

## setup: toolchain target + a running local PostgreSQL
setup:
	@rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
	@scripts/ensure-postgres.sh
	@python3 -c 'import pytest, mcp, standardwebhooks, prometheus_client, requests' 2>/dev/null || python3 -m pip install -q -r requirements-dev.txt
	@scripts/ensure-browser.sh

## build: every component (.wasm) and the native binaries (local host, ipai CLI)
build: components host

components:
	$(CARGO) build --target wasm32-wasip2 --release $(addprefix -p ,$(COMPONENTS) $(TEST_FIXTURES))

host:
	$(CARGO) build --release -p ipai-spin-host -p ipai-cli

## migrate: create the database if missing and apply migrations/ to DATABASE_URL
migrate: setup host
	@. scripts/env.sh && target/release/ipai migrate --database-url "$$DATABASE_URL"

## up: build, migrate, serve on LISTEN (default 127.0.0.1:3000) with spin or the local host;
## refuses a non-loopback LISTEN while a secret is a development default (before building)
up: dev-secrets-check setup build
	@scripts/up.sh

dev-secrets-check:
	@. scripts/env.sh && scripts/refuse-dev-secrets.sh

## test: every test — unit and SQL tests, then the end-to-end suites under the local host and
## again under real Spin when a Spin CLI is available (SPIN_BIN, PATH, or `make spin-cli`)
test: setup build
	$(CARGO) test --release --workspace --exclude ipai-tests
	scripts/conformance.sh --from-bundle-if-present
	python3 -m pytest -q odoo
	scripts/test-odoo.sh
	scripts/test-e2e.sh local
	scripts/test-e2e.sh spin

## conformance: Spin's conformance suite (fermyon/conformance-tests, pinned commit) for what
## the local host implements, against the local host and real Spin when available; needs a
## clone of the suite in CONFORMANCE_TESTS_DIR or the bundle in ../shared/spin-conformance
## (README, "The local Spin host"). `make test` runs it too when the bundle is there.
conformance: setup host
	@scripts/conformance.sh

## spin-cli: unpack the Spin 4.0.2 + cron plugin bundle from ../shared/spin (if present) into target/
spin-cli:
	@b=$$(ls ../shared/spin/spin-*-linux-amd64.tar.xz 2>/dev/null | head -n1); \
	if [ -z "$$b" ]; then echo "no ../shared/spin bundle"; \
	elif ls target/spin-cli/spin-*/bin/spin >/dev/null 2>&1; then echo "Spin CLI: $$(ls target/spin-cli/spin-*/bin/spin)"; \
	else mkdir -p target/spin-cli && tar -xJf "$$b" -C target/spin-cli && echo "Spin CLI: $$(ls target/spin-cli/spin-*/bin/spin)"; fi

## lint: formatting and clippy (native crates and wasm components)
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings
	$(CARGO) clippy --release --target wasm32-wasip2 $(addprefix -p ,$(COMPONENTS) $(TEST_FIXTURES)) -- -D warnings

fmt:
	$(CARGO) fmt --all

## bench: ingest throughput/latency under each available runtime → target/bench/report.json
bench: setup build
	$(CARGO) build --release -p ipai-bench
	@scripts/bench.sh

## deploy: `spin build` + `spin cloud deploy` to Fermyon Cloud with every SPIN_VARIABLE_* set in
## the environment (docs/deploy.md); DRY_RUN=1 prints the plan with secrets redacted
deploy:
	@python3 scripts/deploy.py $(if $(DRY_RUN),--dry-run,)

clean:
	$(CARGO) clean
