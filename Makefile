# clinicos — the two commands that matter: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Keep equal to the uv pin in pyproject.toml's dev group.
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint format bench bench-smoke bench-smoke-baseline clean-var fuzz screenshots

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
## The console's browser tests run in a pytest process of their own: Playwright's sync API keeps
## an event loop running in its thread, which the async tests' loops may not share.
test: $(STAMP)
	@status=0; \
	$(BIN)/pytest -n auto --ignore=tests/e2e || status=$$?; \
	$(BIN)/pytest -n auto tests/e2e || status=$$?; \
	exit $$status

## fuzz: the long API fuzzing pass (schemathesis, every phase, all checks, two organizations);
## FUZZ_EXAMPLES per operation and phase. Prints the number of cases for docs/reliability.md.
FUZZ_EXAMPLES ?= 40
fuzz: $(STAMP)
	CLINICOS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/fuzz -s -q -p no:logging

## screenshots: refresh docs/screenshots/ (the README shows them) from the accessibility walk
screenshots: $(STAMP)
	CLINICOS_SCREENSHOTS=docs/screenshots $(BIN)/pytest tests/e2e/test_console_accessibility.py -q

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

## lint: lock up to date, ruff, mypy, then the supply chain and secrets (docs/security.md):
##  - pip-audit checks every locked dependency (all of uv.lock, dev tools included, exported as
##    pinned requirements) against PyPI's vulnerability data. --strict: a dependency it could not
##    look up fails the audit instead of passing unchecked. PyPI's per-release JSON API, which
##    that data comes from, answers 404 for every release from the build machines today (the
##    index and the per-project JSON answer; OSV is unreachable), so pip-audit would skip every
##    dependency and still say "No known vulnerabilities found". A probe of that API comes first:
##    when it fails, the step says loudly that it did NOT run, and fails lint only with
##    `make lint AUDIT_REQUIRED=1`. An advisory with no fixed release may be ignored only by
##    adding `--ignore-vuln ID` below with a comment naming the ID and why (none today).
##  - detect-secrets scans every tracked file (two processes, each against its own copy of
##    .secrets.baseline, so lint never rewrites it). Each finding in the baseline was reviewed and
##    marked is_secret=false: test fixtures, example URLs in docs, the development-only default
##    key that production refuses, hex digests. The baseline also excludes the `"git_commit": <sha>`
##    lines every benchmark report writes (--exclude-lines). A new finding fails lint: remove the secret; for a
##    deliberate fake, add `# pragma: allowlist secret` to its line or refresh and re-audit the
##    baseline (`.venv/bin/detect-secrets scan -n --baseline .secrets.baseline $(git ls-files)`,
##    then `.venv/bin/detect-secrets audit .secrets.baseline`) and commit it. Known findings whose
##    line numbers moved (the hook's exit code 3) do not fail lint.
lint: $(STAMP)
	$(BIN)/uv lock --check
	$(BIN)/ruff check src tests migrations bench
	$(BIN)/ruff format --check src tests migrations bench
	$(BIN)/mypy
	@reqs=$$(mktemp) && trap 'rm -f "$$reqs"' EXIT && \
	$(BIN)/uv export --frozen --format requirements-txt --no-hashes --no-emit-project --quiet \
	  -o "$$reqs" && \
	probe="https://pypi.org/pypi/pip-audit/$$($(BIN)/pip-audit --version | cut -d' ' -f2)/json" && \
	if $(BIN)/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=15)' \
	    "$$probe" 2>/dev/null; then \
	  echo "pip-audit: $$(grep -c '==' "$$reqs") locked dependencies"; \
	  $(BIN)/pip-audit --strict --no-deps --disable-pip --progress-spinner off -r "$$reqs"; \
	else \
	  echo "pip-audit: NOT RUN - PyPI's vulnerability API ($$probe) did not answer 200 here," >&2; \
	  echo "  so no dependency could be checked (make lint AUDIT_REQUIRED=1 makes this fatal)" >&2; \
	  test -z "$(AUDIT_REQUIRED)"; \
	fi
	@files=$$(git ls-files | wc -l) && echo "detect-secrets: $$files tracked files" && \
	git ls-files -z | xargs -0 -P 2 -n $$((files / 2 + 1)) sh -c \
	  'copy=$$(mktemp) && cp .secrets.baseline "$$copy" || exit 2; \
	   out=$$($(BIN)/detect-secrets-hook --baseline "$$copy" "$$@"); rc=$$?; rm -f "$$copy"; \
	   test $$rc -eq 3 && exit 0; test -z "$$out" || printf "%s\n" "$$out"; exit $$rc' detect-secrets

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

## soak: issue 9's soak — the mixed clinical workload (bench/mixed.py) at one constant rate for
## 10 minutes against a real server on the cached 10,000-patient dataset; per-minute table,
## docs/soak.json; fails on any error, RSS growth > 30 MB after minute 2, or a last-minute p95
## over twice minute 2's. SOAK_ARGS e.g. "--engine postgresql --duration 600 --rate 12"
.PHONY: soak
soak: $(STAMP)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)
