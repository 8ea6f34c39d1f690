# raising-dagster: `make demo` and `make test` work from a fresh clone (they bootstrap .venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA := $(CURDIR)/data
STORE := $(DATA)/store
TEACHER ?= template
PORT ?= 3000
export DAGSTER_HOME := $(DATA)/dagster_home
export GX_ANALYTICS_ENABLED := False

.PHONY: demo test ui lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	printf 'telemetry:\n  enabled: false\n' > $@

## demo: raise the bundled sample corpus through Dagster into data/store/training_ready
demo: $(BIN)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/raising run --out $(STORE) --teacher $(TEACHER)

## test: the whole test suite
test: $(BIN)/.installed
	$(BIN)/ruff check raising_dagster tests
	$(BIN)/pytest

## ui: the Dagster UI on http://127.0.0.1:$(PORT), showing the demo's runs, lineage and metadata
ui: $(BIN)/.installed $(DAGSTER_HOME)/dagster.yaml
	RAISING_STORE_DIR=$(STORE) $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(PORT)

## bench: curriculum stages at 100k and 1M synthetic documents vs a single-pass Polars floor
bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_curriculum.py $(BENCH_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check raising_dagster tests
	$(BIN)/ruff format --check raising_dagster tests

clean:
	rm -rf $(DATA)
