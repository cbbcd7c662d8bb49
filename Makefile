# Sietch: the README's commands. `make test` needs nothing installed by hand.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# A Python >= 3.12 (nextcord 3 needs it): $PYTHON, then python3.13/3.12 on PATH, then pyenv's.
find_python = $(shell \
	for c in "$$PYTHON" python3.13 python3.12 python3 \
	         $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python3 2>/dev/null); do \
	  [ -n "$$c" ] || continue; \
	  p=$$(command -v "$$c" 2>/dev/null) || continue; \
	  "$$p" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo "$$p"; break; }; \
	done)

.PHONY: venv install run migrate test lint services services-stop clean

venv: $(STAMP)

$(STAMP): setup.cfg
	@base="$(find_python)"; \
	if [ -z "$$base" ]; then echo "error: no Python >= 3.12 found; set PYTHON=/path/to/python3.12" >&2; exit 2; fi; \
	if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then \
	  rm -rf $(VENV); echo "creating $(VENV) from $$base"; "$$base" -m venv $(VENV); fi
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,lint]'
	@touch $(STAMP)

install: venv

migrate: venv
	$(VENV)/bin/sietch migrate

run: venv
	$(VENV)/bin/sietch migrate
	$(VENV)/bin/sietch run

# The tests start the local CQL node themselves (or use SIETCH_TEST_SCYLLA_HOSTS) and leave it running
# for the next run; `make services-stop` stops it.
test: venv
	$(PY) -m pytest

# Only the cluster test (also part of `make test`): a node of a two-node CQL cluster (127.0.0.2, 127.0.0.3;
# tools/cql-node/cluster.sh) dies mid-run and comes back: commands keep answering, no write is lost,
# `sietch verify` finds 0 differences. It starts two more JVMs and stops them afterwards unless they were
# already running.
.PHONY: test-cluster
test-cluster: venv
	$(PY) -m pytest tests/cluster -s --durations=5

# Benchmarks (not part of `make test`): PostgreSQL vs Scylla reads at 10k/100k/1M members, the legacy query
# shapes, snapshot rebuilds and the bot's interactions per second; writes BENCHMARKS.md (see bench/).
# Takes about an hour; BENCH_ARGS=--quick for a smoke run (results under .run/bench-quick/).
.PHONY: bench
bench: venv
	$(PY) -m pip install -q 'matplotlib>=3.8' 'pyinstrument>=4.6' 'py-spy>=0.3.14'
	PYTHON=$(PY) $(PY) -m bench $(BENCH_ARGS)

lint: venv
	$(VENV)/bin/ruff check bot backends cogs tests bench
	$(VENV)/bin/ruff format --check bot backends cogs tests bench
	$(VENV)/bin/mypy

# The local CQL node (Apache Cassandra 5.0 from Maven Central jars, see tools/cql-node/README.md).
services: venv
	PYTHON=$(PY) tools/cql-node/node.sh start

services-stop:
	tools/cql-node/node.sh stop
	SIETCH_CQL_DIR=.run/cql-node-spare tools/cql-node/node.sh stop

clean:
	rm -rf $(VENV) .run .mypy_cache .ruff_cache .pytest_cache
