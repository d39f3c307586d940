# The two commands of the README: `make demo` and `make test`.
# Everything they need is installed into .venv from PyPI (moto, cargo-lambda).

VENV := .venv
PY := $(VENV)/bin/python
CARGO_LAMBDA := $(VENV)/bin/cargo-lambda
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: venv test lint emulator-test infra-check fuzz-api demo build deploy

$(VENV)/.installed: tools/requirements.txt $(wildcard infra/requirements.txt)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt $(if $(wildcard infra/requirements.txt),-r infra/requirements.txt)
	touch $@

venv: $(VENV)/.installed

## Every test: style, lints, the emulator's own tests, unit, SDK-mock and
## emulator tests, then the API fuzz run.
test: venv lint emulator-test infra-check
	cargo test --workspace --all-targets --all-features --locked
	$(MAKE) fuzz-api

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

emulator-test: venv
	$(PY) -m unittest discover -s tools/emulator -p 'test_*.py'

## SAM translated offline then cfn-lint, checkov on both templates, and the
## template property tests (including broken copies that must be rejected).
infra-check: venv
	$(PY) -m unittest discover -s infra/tests -p 'test_*.py'

## schemathesis against infra/openapi.yaml, through validate-destination under
## cargo lambda watch: fails on any 5xx or any answer the document does not describe.
fuzz-api: venv
	cargo run --quiet --locked -p stored-messages --features emulator --example fuzz_api

## The whole flow on a laptop: emulator, customer role and bucket, destination
## registered through validate-destination, samples archived through
## archive-message under `cargo lambda watch`.
demo: venv
	cargo run --quiet --locked -p stored-messages --features emulator --example demo

## arm64 release zips of the three functions under target/lambda/.
## Needs the Rust target: rustup target add aarch64-unknown-linux-gnu
build: venv
	$(CARGO_LAMBDA) lambda build --release --arm64 --output-format zip \
		--bin archive-message --bin validate-destination --bin check-destinations
	@ls -l target/lambda/*/bootstrap.zip

## Deploys infra/template.yaml with the AWS SAM CLI (not installed by make).
deploy:
	@command -v sam >/dev/null || { echo "install the AWS SAM CLI first: https://docs.aws.amazon.com/serverless-application-model/"; exit 1; }
	cd infra && sam build && sam deploy --guided
