# The two commands of the README: `make demo` and `make test`.
# Everything they need is installed into .venv from PyPI (moto, cargo-lambda,
# schemathesis, the template checkers; checkov in .venv/checkov).

VENV := .venv
PY := $(VENV)/bin/python
CARGO_LAMBDA := $(VENV)/bin/cargo-lambda
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: bench-baseline venv test lint build-tests leak-audit emulator-test fuzz-api demo bench revert-check \
	console console-tools console-test

$(VENV)/.installed: tools/requirements.txt infra/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt -r infra/requirements.txt
	touch $@

venv: $(VENV)/.installed

## Every test: style, lints, the emulator's own tests, unit, SDK-mock and
## emulator tests with every log line, metric line and API answer recorded,
## the leak audit of those recordings, the API fuzz run, then the
## console's browser tests.
## The Python tools, Chromium and the console's npm packages (mostly
## downloads) install while cargo lints and builds the test binaries: on a
## fresh 2-core machine that overlap is about three minutes of the run.
LEAK_AUDIT := target/leak-audit
test:
	$(MAKE) --no-print-directory -j2 venv infra-tools console-tools build-tests
	$(MAKE) --no-print-directory emulator-test infra-check
	rm -rf $(LEAK_AUDIT)
	STORED_MESSAGES_LEAK_AUDIT=$(CURDIR)/$(LEAK_AUDIT) cargo test --workspace --all-targets --all-features --locked
	$(MAKE) leak-audit
	$(MAKE) fuzz-api
	$(MAKE) console-test

## No recipient, body, External ID or credential in anything the suite
## recorded (testkit/src/leak_audit.rs). The recordings (~0.5 GB) are removed
## once they pass and kept for reading when they do not.
leak-audit:
	$(SUITE_BUILD) --quiet
	target/debug/examples/leak_audit $(LEAK_AUDIT)
	rm -rf $(LEAK_AUDIT)

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

## Every target of the workspace with the test run's own features (all
## members, every dev-dependency): the audit and fuzz programs then reuse
## the test build's crates. `cargo run -p stored-messages-testkit` would
## resolve features for that one package (no bench, no test-util) and
## rebuild most of the tree, two minutes of a clean run.
SUITE_BUILD := cargo build --workspace --all-targets --all-features --locked

## Lints, then every test binary and the test kit's programs built, so the
## suite run and the audit and fuzz programs start at once.
build-tests: lint
	cargo test --workspace --all-targets --all-features --locked --no-run
	$(SUITE_BUILD)

emulator-test: venv
	$(PY) -m unittest discover -s tools/emulator -p 'test_*.py'

## schemathesis against infra/openapi.yaml, through validate-destination under
## cargo lambda watch: fails on any 5xx or any answer the document does not describe.
fuzz-api: venv
	$(SUITE_BUILD) --quiet
	target/debug/examples/fuzz_api

## The whole flow on a laptop: emulator, customer role and bucket, destination
## registered through validate-destination, samples archived through
## archive-message under `cargo lambda watch`.
demo: venv
	cargo run --quiet --locked -p stored-messages-testkit --example demo

## The console (console/): Debian's Chromium for its browser tests, its npm
## packages as locked, and its build (type checks, then Vite into
## console/dist). apt-get needs root: sudo is used when we are not.
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
$(CHROMIUM):
	@if [ -n "$(SUDO)" ] && ! sudo -n true 2>/dev/null; then \
		echo "$(CHROMIUM) is missing and sudo needs a password: run 'sudo apt-get install chromium'" \
			"(or set CHROMIUM to a Chromium binary), then run make again" >&2; exit 1; fi
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core

console/node_modules/.installed: console/package.json console/package-lock.json
	cd console && npm ci --no-audit --no-fund --loglevel=error
	touch $@

CONSOLE_SOURCES := $(wildcard console/src/*) console/index.html console/vite.config.ts console/tsconfig.json \
	$(wildcard console/tests/*)
console/dist/index.html: console/node_modules/.installed $(CONSOLE_SOURCES)
	cd console && npm run --silent build

console-tools: $(CHROMIUM) console/dist/index.html

## `make console`: the page on 127.0.0.1 (the address is printed) with the
## emulator, validate-destination under `cargo lambda watch`, and a
## customer account ready to be connected; Ctrl-C stops it all.
## CONSOLE_PORT picks the port, CUSTOMER_TEMPLATE_URL the quick-create
## link's template.
console: venv console/dist/index.html
	cargo run --quiet --locked -p stored-messages-testkit --example console

## The console in headless Chromium (console/tests/): the happy path, a
## failing check, the lifecycle at a phone's width, axe-core on every
## screen. Screenshots in target/console/screenshots/.
console-test: venv console-tools
	$(SUITE_BUILD) --quiet
	cd console && npm test

include infra/infra.mk

## The archive path measured (README, "Performance"): our release binaries
## against s3s-fs (the ceiling) and the boto3 comparator in bench/, all fed
## through a local Lambda runtime API, and the backfill path's 100,000-record
## manifest beside it. Tables on stdout, JSON in target/bench/.
S3S_FS := target/bench-tools/bin/s3s-fs
$(S3S_FS):
	cargo install s3s-fs@0.14.1 --features binary --locked --root target/bench-tools

bench: venv $(S3S_FS)
	cargo build --release --locked -p bench -p archive-message -p validate-destination -p check-destinations -p run-backfill
	target/release/bench --release target/release --s3s-fs $(S3S_FS) --python $(PY) \
		--comparator bench/boto3_handler.py --out target/bench

## CPU per message of this tree against an earlier build (BASELINE, by
## default the commit before HEAD), in alternating runs of one process: what
## a refactoring costs. The baseline builds from a scratch worktree into the
## same target directory, so only the workspace's own crates recompile.
## BENCH_BASELINE_ROUNDS=N runs each side N times per shape (default 2).
BASELINE ?= HEAD~1
bench-baseline: venv $(S3S_FS)
	cargo build --release --locked -p bench -p archive-message
	rm -rf target/bench-current target/bench-baseline
	mkdir -p target/bench-current target/bench-baseline
	cp target/release/archive-message target/bench-current/
	git worktree remove --force target/baseline-src 2>/dev/null || true
	git worktree add --detach target/baseline-src $(BASELINE)
	cd target/baseline-src && CARGO_TARGET_DIR=$(CURDIR)/target cargo build --release --locked -p archive-message
	cp target/release/archive-message target/bench-baseline/
	git worktree remove --force target/baseline-src
	# The baseline's binary took target/release/archive-message; put ours back.
	cp target/bench-current/archive-message target/release/archive-message
	BENCH_ONLY=baseline BENCH_BASELINE=target/bench-baseline target/release/bench \
		--release target/bench-current --s3s-fs $(S3S_FS) --python $(PY) \
		--comparator bench/boto3_handler.py --out target/bench-baseline

## Each issue-13 regression test fails once its fix is reverted (a scratch
## worktree of HEAD; tools/revert_check/run.py). Not part of `make test`.
revert-check: venv
	$(PY) tools/revert_check/run.py
