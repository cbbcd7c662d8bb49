# Sietch: the README's commands. `make test` needs nothing installed by hand.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# A Python >= 3.12 (nextcord 3 needs it), 3.12 first (the one requirements/lock.txt is resolved for): $PYTHON,
# then python3.12 on PATH, then pyenv's 3.12, then a later one.
find_python = $(shell \
	for c in "$$PYTHON" python3.12 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3 2>/dev/null) \
	         python3.13 python3 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[3-9]*/bin/python3 2>/dev/null); do \
	  [ -n "$$c" ] || continue; \
	  p=$$(command -v "$$c" 2>/dev/null) || continue; \
	  "$$p" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo "$$p"; break; }; \
	done)

.PHONY: venv install run migrate test lint lock services services-stop clean browser

LOCK := requirements/lock.txt
BENCH_LOCK := requirements/bench.txt

venv: $(STAMP)

# Every runtime, test and lint dependency comes from the hashed lock, at the versions it pins; then the project
# itself, without dependencies (everything it needs is in the lock).
$(STAMP): $(LOCK) setup.cfg
	@base="$(find_python)"; \
	if [ -z "$$base" ]; then echo "error: no Python >= 3.12 found; set PYTHON=/path/to/python3.12" >&2; exit 2; fi; \
	if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then \
	  rm -rf $(VENV); echo "creating $(VENV) from $$base"; "$$base" -m venv $(VENV); fi
	$(PY) -m pip install -q --require-hashes -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

# `make lock` refreshes requirements/lock.txt (install_requires and the test and lint extras of setup.cfg) and
# requirements/bench.txt (requirements/bench.in, constrained by the first), every version pinned with its hashes,
# resolved with Python 3.12 for Linux x86_64. Run it after changing a dependency in setup.cfg or
# requirements/bench.in: pins that still fit are kept, only what changed is resolved again. `make lock
# UPGRADE=1` takes the newest releases the ranges allow instead (ruff and mypy move only with setup.cfg's
# exact pins); run `make lint` and `make test` before committing the two files. pip-tools runs from a venv of its
# own (.run/pip-tools), never from .venv.
PIP_TOOLS := .run/pip-tools
PIP_COMPILE = $(PIP_TOOLS)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-find-links $(if $(UPGRADE),--upgrade)
lock:
	@base="$(find_python)"; \
	if [ -z "$$base" ] || ! "$$base" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then \
	  echo "error: the lock is resolved with Python 3.12, found '$$base'; set PYTHON=/path/to/python3.12" >&2; \
	  exit 2; fi; \
	[ -x $(PIP_TOOLS)/bin/pip-compile ] || { rm -rf $(PIP_TOOLS) && "$$base" -m venv $(PIP_TOOLS) && \
	  $(PIP_TOOLS)/bin/pip install -q 'pip-tools==7.7.0'; }
	$(PIP_COMPILE) --extra test --extra lint -o $(LOCK) setup.cfg
	$(PIP_COMPILE) -o $(BENCH_LOCK) requirements/bench.in

install: venv

migrate: venv
	$(VENV)/bin/sietch migrate

run: venv
	$(VENV)/bin/sietch migrate
	$(VENV)/bin/sietch run

# The tests start the local CQL node themselves (or use SIETCH_TEST_SCYLLA_HOSTS) and leave it running
# for the next run; `make services-stop` stops it. They run in TEST_WORKERS processes (pytest-xdist), each
# with a PostgreSQL and a keyspace of its own; much of a test's time is spent waiting on the servers, so two
# workers finish sooner than one even on two cores. The tests that start CQL nodes of their own (marked
# own_cql_nodes, tests/fixtures/markers.py) share fixed ports: they run after, in one process. Both runs go
# to the end; the target fails if either did. TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2
test: venv browser
ifeq ($(TEST_WORKERS),0)
	$(PY) -m pytest
else
	status=0; \
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not own_cql_nodes" || status=$$?; \
	$(PY) -m pytest -m own_cql_nodes || status=$$?; \
	exit $$status
endif

# A headless browser for the migration page's test (tests/e2e/test_migration_page.py): Debian's Chromium,
# installed when neither `chromium` nor `chromium-browser` is on PATH (needs root, as on the test machine).
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

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
.PHONY: bench bench-redis
bench: venv bench-redis
	$(PY) -m pip install -q --require-hashes -r $(BENCH_LOCK)
	PYTHON=$(PY) $(PY) -m bench $(BENCH_ARGS)

# The benchmark's Redis sorted-set row (bench/redis_row.py): Debian's redis-server, installed when it is not on
# PATH (needs root, as on the benchmark machine). For the benchmark only, never for the bot: the row starts a
# server of its own (not the service the package may set up). When the install fails the run goes on, and the
# report says why the row was not measured.
bench-redis:
	@command -v redis-server >/dev/null || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server; } || \
	  echo "warning: redis-server not installed; the benchmark's Redis row will say it was not measured" >&2

# ruff, ruff format and mypy strict at the versions setup.cfg pins; then no committed profile over 100 KB (the
# benchmark's raw py-spy profiles, bench/profiles/*.raw, stay local: .gitignore).
lint: venv
	$(VENV)/bin/ruff check bot backends cogs tests bench
	$(VENV)/bin/ruff format --check bot backends cogs tests bench
	$(VENV)/bin/mypy
	@big=$$(git ls-files -z bench/profiles 2>/dev/null | xargs -0 -r -I{} find {} -maxdepth 0 -size +100k 2>/dev/null); \
	if [ -n "$$big" ]; then echo "error: committed profiles over 100 KB (keep them out of git): $$big" >&2; exit 1; fi

# The local CQL node (Apache Cassandra 5.0 from Maven Central jars, see tools/cql-node/README.md).
services: venv
	PYTHON=$(PY) tools/cql-node/node.sh start

services-stop:
	tools/cql-node/node.sh stop
	SIETCH_CQL_DIR=.run/cql-node-spare tools/cql-node/node.sh stop

clean:
	rm -rf $(VENV) .run .mypy_cache .ruff_cache .pytest_cache
