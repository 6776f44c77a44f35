# pm25-pipeline: `make run` trains once with default settings; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install install-dev run validate serve test bench sweep network-sweep clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installs are stamped so repeated `make` calls skip pip; editing the project files reinstalls.
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/pm25 run

validate: install
	$(BIN)/pm25 validate

# Prefect server + work pool + deployments + automations (pm25 automations apply) + worker on $(HOST):$(PORT); a dead
# worker is replaced; Ctrl-C stops them all.
# A HOST other than 127.0.0.1 needs PREFECT_SERVER_API_AUTH_STRING=user:password.
# PostgreSQL instead of SQLite: PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://user:pass@127.0.0.1:5432/prefect make serve
PORT ?= 4200
HOST ?= 127.0.0.1
serve: install
	$(BIN)/pm25 serve --port $(PORT) --host $(HOST)

# The layers first (import-linter's contracts in pyproject.toml, seconds), then the suite.
test: install-dev
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The seed recipe beside the default run, with an ablation ladder, and the network of stations with threads and with
# Dask: reports/bench/bench.json and bench.md. BENCH_ARGS="--only network" runs the network rows alone.
bench: install
	$(BIN)/python benchmarks/benchmark.py $(BENCH_ARGS)

# Candidate model settings × seeds scored on the validation span only: reports/sweep/sweep.json and sweep.md (~20 min).
sweep: install
	$(BIN)/python benchmarks/sweep.py $(SWEEP_ARGS)

# The network model's inputs and settings, scored on the validation span only (needs NETWORK_HOME, a PM25_HOME where
# `pm25 run` ran on station files): reports/sweep/network_sweep.json and .md (~2 min a candidate).
network-sweep: install
	$(BIN)/python benchmarks/network_sweep.py --home $(NETWORK_HOME) $(SWEEP_ARGS)

clean:
	rm -rf pm25_home .pytest_cache
