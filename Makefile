# The two commands of the README:
#   make demo   set up, start the devnet, deploy, run the prescription lifecycle through `rx`
#   make test   set up, run the whole test suite (ephemeral chains; never touches the devnet)
# Both are idempotent and fast when already set up.

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
export SOLCX_BINARY_PATH := $(ROOT)/.solcx
export APE_DATA_FOLDER := $(ROOT)/.ape
export PATH := $(ROOT)/.venv/bin:$(ROOT)/node_modules/.bin:$(PATH)

.PHONY: setup compile lint demo test test-slow gas publish mutate devnet-down clean

setup:
	@bash tools/setup.sh

compile: setup
	@bash tools/compile.sh

demo: compile
	@bash tools/demo.sh

test: compile lint
	@ape test tests -m "not slow" $(ARGS)

lint: setup
	@ruff check src tests scripts tools
	@ruff format --check --quiet src tests scripts tools || (echo 'make lint: run "ruff format src tests scripts tools" (the tree is kept in ruff'"'"'s format)'; exit 1)

test-slow: compile
	@ape test tests -m slow $(ARGS)

gas: compile
	@ape run gas_report

publish: compile
	@python -m rxchain.dev.publish

# Mutation testing of the contracts (slow; not part of `make test`): see docs/testing.md.
# ARGS narrows a run, e.g. make mutate ARGS="--contract ConsortiumPermissioning --jobs 1".
mutate: compile
	@.venv/bin/python -m pip install -q --disable-pip-version-check -r tools/mutate-requirements.txt
	@.venv/bin/python tools/mutate.py $(ARGS)

devnet-down:
	@rx devnet down

clean:
	rm -rf .build .mutate contracts/.cache .ape/packages .pytest_cache .hypothesis
