# mlpipe: one entry point for setup, synth, tests, benchmarks and the demo.
# `make demo` and `make test` set everything up first; setup is idempotent and quick when done.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3.11
VENV        := .venv
PY          := $(VENV)/bin/python
# Node 24 LTS from node_modules (package.json) comes first on PATH: the CDK CLI and jsii run on it.
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export CDK_OUTDIR ?= cdk.out
# No telemetry, no version checks, no update notices: synth is offline and quiet.
export CDK_DISABLE_CLI_TELEMETRY := 1
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export SAGEMAKER_SUPPRESS_V2_WARNING := 1
# Python keeps its compiled modules (__pycache__, ignored by git and the assets) even where the shell says not
# to: a test run starts dozens of Python processes, and each would compile mlpipe again.
unexport PYTHONDONTWRITEBYTECODE
CDK := node_modules/.bin/cdk
CDK_FLAGS := --no-notices --no-version-reporting --ci --output $(CDK_OUTDIR)

.PHONY: help setup synth test lint demo bench clean

help:
	@echo "make demo   set up, then run the whole pipeline locally (mlpipe local run; about 2 minutes)"
	@echo "make test   set up, then run lint and the test suite"
	@echo "make setup  create .venv and node_modules (pinned); quick when already done"
	@echo "make synth  synthesize every stack into \$$CDK_OUTDIR (default cdk.out); -e ENV=prod for prod"
	@echo "make bench  run the benchmarks in bench/ (synth, training, ETL at 1M rows, local mode: clickstream at 100k and 1M, regression at 120k, an init workload, init runs on a shared Spark host)"

setup: $(VENV)/.installed node_modules/.installed build/lambda-layer/.installed build/jsii-package-cache.installed
	@# Local Spark's class-data-sharing archive (it halves a Spark driver's start-up): made once, checked each time.
	$(PY) -m mlpipe.local.spark_cds

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@node --version | grep -q '^v24\.' || { echo "node_modules/.bin/node is not Node 24" >&2; exit 1; }
	@touch $@

# jsii's kernel unpacks aws-cdk-lib, constructs and cdk-nag into its package cache (~/.cache/aws/jsii) the
# first time a process on the machine loads them: done here once, not inside the first synth or test run.
build/jsii-package-cache.installed: $(VENV)/.installed node_modules/.installed
	@mkdir -p build
	$(PY) -c "import aws_cdk, cdk_nag"
	@touch $@

# Runtime dependencies of the Lambda functions, built for the Lambda platform (Python 3.14, arm64).
build/lambda-layer/.installed: lambdas/requirements.txt $(VENV)/.installed
	rm -rf build/lambda-layer.tmp && mkdir -p build/lambda-layer.tmp/python
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
	  --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 --implementation cp \
	  --python-version 3.14 --target build/lambda-layer.tmp/python -r lambdas/requirements.txt
	cd build/lambda-layer.tmp/python && find . -depth \( -name tests -o -name __pycache__ \) -type d -exec rm -rf {} +
	cd build/lambda-layer.tmp && $(CURDIR)/$(PY) -m zipfile -c ../lambda-layer.zip.tmp python
	rm -rf build/lambda-layer && mv build/lambda-layer.tmp build/lambda-layer && mv build/lambda-layer.zip.tmp build/lambda-layer.zip
	@touch $@

ENV ?= dev
synth: setup
	$(CDK) synth --quiet -c env=$(ENV) $(CDK_FLAGS)
	@echo "synthesized $$(ls $(CDK_OUTDIR)/*.template.json | wc -l) templates into $(CDK_OUTDIR)"

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

test: setup lint
	$(PY) -m pytest -n 2 --dist loadgroup --no-loadscope-reorder

# The main job: the whole pipeline on this machine, offline (docs/local-mode.md). ROWS=... CANDIDATES=...
DEMO_DIR ?= local-run
ROWS ?= 600000
CANDIDATES ?= 2
demo: setup
	$(PY) -m mlpipe local run --rows $(ROWS) --candidates $(CANDIDATES) --workdir $(DEMO_DIR)

# Each prints figures and ratios measured in one run; larger runs: bench/etl.py --rows 1000000,10000000.
bench: setup
	$(PY) bench/synth.py
	$(PY) bench/train.py
	$(PY) bench/etl.py --rows 1000000
	$(PY) bench/e2e.py --rows 100000,1000000
	$(PY) bench/e2e.py --workload examples/regression --rows 120000
	$(PY) bench/e2e.py --workload init
	$(PY) bench/shared_spark.py

clean:
	rm -rf cdk.out cdk.out.local-* build .pytest_cache .ruff_cache .mypy_cache local-run
