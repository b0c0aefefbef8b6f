# drportal: `make demo` sets everything up and runs the demo; `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/drportal
DEMO_PORT ?= 8000

.PHONY: demo two-site-demo test setup services lint format security lab web clean

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[test]'
	touch $@

setup: $(VENV)/.installed

services:
	./scripts/ensure-services

# The demo: SQLite file, the lab (simulated estate over SSH), the web UI on :$(DEMO_PORT).
demo: setup services
	mkdir -p var
	$(PY) manage.py migrate --noinput
	$(PY) manage.py lab reset
	$(PY) manage.py load_reference_estate
	$(PY) manage.py create_demo_users
	$(PY) manage.py capacity
	./scripts/run-demo $(DEMO_PORT)

# Two portals on one machine, one per site (docs/two-sites.md): WSL on :8001 (PostgreSQL
# primary), KA on :8002 (hot standby). `scripts/two-site-demo stop|clean|status|lose SITE|...`
two-site-demo: setup services
	$(PY) scripts/two-site-demo up

test: setup services
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(PY) scripts/security-scan
	# Two test processes (pytest-xdist, a file at a time): the suite mostly waits on workers,
	# SSH, PostgreSQL clusters and browsers. Each has its own test database (pytest-django adds
	# _gw0/_gw1) and its own Redis database (the one below, and the one before it:
	# tests/conftest.py), so the Celery workers one starts never take the other's tasks.
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379/15} $(VENV)/bin/pytest -q -n $${PYTEST_PROCESSES:-2} --dist loadfile
	# SQLite, the demo's database: the reference failover, a drill and the board, with a real worker.
	DATABASE_URL=sqlite:///$(CURDIR)/var/test-sqlite.sqlite3 REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379/15} $(VENV)/bin/pytest -q -m sqlite

# ruff, the import contract (pyproject.toml [tool.importlinter]) and mypy ([tool.mypy]).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# bandit over the code, pip-audit over requirements.lock (skipped with a message offline).
security: setup
	$(PY) scripts/security-scan

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf var/lab var/drportal.sqlite3 var/staticfiles
