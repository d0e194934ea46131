# The commands a person runs. `make demo` and `make test` install what they need first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
UV := python3 -m uv
export UV_PYTHON_DOWNLOADS := never

.PHONY: help install infra certs up down status demo test bench lint lock

help:
	@echo "make demo    run one three-camera trial from recording to results (starts what it needs)"
	@echo "make test    run the whole test suite, end-to-end test included"
	@echo "make up      start everything in the background (gateway on http://127.0.0.1:8000)"
	@echo "make down    stop what 'make up' started; make status: what is running"
	@echo "make bench   the benchmarks (status poll, propagation, upload), figures beside references"
	@echo "make certs   the local CA and gateway certificate (phones need HTTPS on 443)"
	@echo "make lint    ruff and the import contracts; make lock: re-pin requirements.txt"

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml shared/pyproject.toml services/*/pyproject.toml pipeline/pyproject.toml
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install -q --disable-pip-version-check uv==0.13.9
	$(UV) venv -q --allow-existing --python python3.11 $(VENV)
	$(UV) pip sync -q --python $(PY) requirements.txt
	@touch $@

infra:
	@dev/ensure-infra.sh

certs: install
	$(PY) -m dev.certs

up: install infra
	$(PY) -m dev.stack up

down:
	@if [ -x $(PY) ]; then $(PY) -m dev.stack down; fi

status: install
	$(PY) -m dev.stack status

demo: install infra
	$(PY) -m dev.demo

test: install infra lint
	$(PY) -m pytest

bench: install infra
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk)
	$(PY) -m bench.status_poll
	$(PY) -m bench.propagation
	$(PY) -m bench.upload

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# Re-resolve the dependencies and pin them (without download URLs) in requirements.txt.
lock:
	$(UV) lock --upgrade
	$(UV) export --all-packages --no-hashes --frozen --quiet > requirements.txt
