# Infrastructure targets, included by the root Makefile (`include infra/infra.mk`).
# The includer defines VENV (the project virtualenv, .venv) and a `venv`
# target that installs tools/requirements.txt and infra/requirements.txt.
#
#   make infra-check   template checks and tests (offline, about 30 s)
#   make build         arm64 release zips: target/lambda/<function>.zip
#   make deploy        sam deploy --guided with those zips (needs the AWS SAM CLI)

LAMBDA_FUNCTIONS := archive-message validate-destination check-destinations run-backfill
LAMBDA_ZIPS := $(LAMBDA_FUNCTIONS:%=target/lambda/%.zip)
CARGO_LAMBDA ?= $(VENV)/bin/cargo-lambda
# checkov pins boto3 and older packaging/networkx than moto's venv has, so it
# lives in a virtualenv of its own, inside the project one (same lifetime).
CHECKOV_VENV := $(VENV)/checkov
# `make deploy DEPLOY_FLAGS=` once samconfig.toml holds the answers.
DEPLOY_FLAGS ?= --guided

.PHONY: infra-tools infra-check build deploy

$(CHECKOV_VENV)/.installed: infra/requirements-checkov.txt
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-checkov.txt
	touch $@

infra-tools: venv $(CHECKOV_VENV)/.installed

## SAM template translated offline and linted with cfn-lint, customer template
## linted, checkov on both; then the template property tests, including broken
## copies the checks must reject.
infra-check: infra-tools
	$(VENV)/bin/python infra/check_templates.py
	$(VENV)/bin/python -m unittest discover -s infra/tests -p 'test_*.py'

## Needs the Rust target for arm64 Lambda: rustup target add aarch64-unknown-linux-gnu
## (cargo lambda would try to add it itself, which fails offline). cargo lambda
## cross-links with the zig it ships; the binaries land in target/lambda/<fn>/bootstrap.
build: venv
	@if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then \
		echo "build needs the arm64 Rust target: rustup target add aarch64-unknown-linux-gnu"; exit 1; fi
	$(CARGO_LAMBDA) lambda build --release --arm64 --locked $(LAMBDA_FUNCTIONS:%=--bin %)
	@for f in $(LAMBDA_FUNCTIONS); do \
		rm -f target/lambda/$$f.zip; \
		$(VENV)/bin/python -m zipfile -c target/lambda/$$f.zip target/lambda/$$f/bootstrap || exit 1; \
	done
	@ls -l $(LAMBDA_ZIPS)

$(LAMBDA_ZIPS):
	@echo "$@ is missing: run make build first"; exit 1

## Deploys what `make build` made: a copy of infra/template.yaml whose CodeUri
## are those zips (infra/package.py), so `sam build` is not needed.
deploy: $(LAMBDA_ZIPS)
	@command -v sam >/dev/null 2>&1 || { \
		echo "make deploy needs the AWS SAM CLI on PATH: pip install aws-sam-cli (or see"; \
		echo "https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/install-sam-cli.html)"; \
		exit 1; }
	$(VENV)/bin/python infra/package.py target/lambda/template.json
	sam deploy $(DEPLOY_FLAGS) --template-file target/lambda/template.json --capabilities CAPABILITY_IAM
