# clinicos — the two commands that matter: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Keep equal to the uv pin in pyproject.toml's dev group.
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint format bench bench-smoke bench-smoke-baseline clean-var

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(STAMP): $(BIN)/uv pyproject.toml uv.lock
	UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --frozen --quiet --python $(BIN)/python
	@touch $(STAMP)

## run: create the environment, migrate the embedded SQLite database, seed the demo, serve
run: $(STAMP)
	@$(BIN)/clinicos db upgrade
	@$(BIN)/clinicos demo seed
	@echo ""
	@echo "clinicos is starting on http://127.0.0.1:8000  (health: /health, readiness: /ready, API docs: /docs)"
	@echo ""
	$(BIN)/clinicos serve

## test: the whole suite (PostgreSQL/Redis tests skip when those servers are absent, unless CI),
## one pytest worker per core (each worker migrates its own databases)
test: $(STAMP)
	$(BIN)/pytest -n auto

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/uv lock --check
	$(BIN)/ruff check src tests migrations bench
	$(BIN)/ruff format --check src tests migrations bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests migrations bench
	$(BIN)/ruff check --fix src tests migrations bench

## bench: the benchmark suite (about 15 min) -> docs/benchmarks.md and docs/benchmarks.json;
## BENCH_ARGS passes options, e.g. make bench BENCH_ARGS="--only cds_inprocess,http_cds --skip bulk"
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

## bench-smoke: the CI regression guard (under a minute, SQLite only): four ratios of our code's
## speed to a bare reference measured beside it (CDS engine, PHI encryption, audit append and
## verify); fails when one falls below 70% of bench/smoke-baseline.json
bench-smoke: $(STAMP)
	$(BIN)/python -m bench.smoke

## bench-smoke-baseline: re-measure the ratios (twice the rounds) into bench/smoke-baseline.json;
## run it on a quiet machine when a slowdown is intended, and commit the file
bench-smoke-baseline: $(STAMP)
	$(BIN)/python -m bench.smoke --write-baseline

clean-var:
	rm -rf var
