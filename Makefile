# The two commands of the README:
#   make demo   set up, start the devnet, deploy, run the prescription lifecycle through `rx`
#   make test   set up, run the whole test suite (ephemeral chains; never touches the devnet)
# Both are idempotent and fast when already set up.

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
export SOLCX_BINARY_PATH := $(ROOT)/.solcx
export APE_DATA_FOLDER := $(ROOT)/.ape
export PATH := $(ROOT)/.venv/bin:$(ROOT)/node_modules/.bin:$(PATH)

.PHONY: setup compile lint demo test test-slow gas publish devnet-down clean

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

test-slow: compile
	@ape test tests -m slow $(ARGS)

gas: compile
	@ape run gas_report

publish: compile
	@python -m rxchain.dev.publish

devnet-down:
	@rx devnet down

clean:
	rm -rf .build contracts/.cache .ape/packages .pytest_cache .hypothesis
