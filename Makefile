# Two promises on a fresh machine with only Python 3.11 and make:
#   make run   serve the product on SQLite (http://127.0.0.1:8000, PORT to change)
#   make test  run the whole suite (SQLite unless DATABASE_URL is set)
#   make demo  (or make run DEMO=1) the same first run, then a month of simulated impact.com
#              postbacks through the real endpoint, so every page has something to show
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export PORT

.PHONY: run demo test faults lint format migrate audit clean screenshots

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

migrate: $(VENV)/.runtime
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py bootstrap
	$(PY) manage.py collectstatic --noinput --verbosity 0
	@# The processor (applies stored postbacks), the delay watcher and the forwarding dispatcher
	@# run beside gunicorn in the same terminal; all four stop together.
	@# DEMO=1: once gunicorn answers, the demo scenario is sent through the real endpoint.
	@$(PY) manage.py process_deliveries & processor=$$!; \
	$(PY) manage.py watch_delays & watcher=$$!; \
	$(PY) manage.py dispatch_webhooks & dispatcher=$$!; \
	$(VENV)/bin/gunicorn --config postbacks_site/gunicorn.conf.py & server=$$!; \
	trap 'kill -TERM $$server $$dispatcher $$watcher $$processor 2>/dev/null; wait' EXIT INT TERM; \
	if [ "$(DEMO)" = 1 ]; then \
		$(PY) manage.py simulate_postbacks --scenario demo --wait 60 --verify \
			|| echo "The demo simulation reported problems (above); still serving."; \
	fi; \
	wait $$server

demo:
	$(MAKE) run DEMO=1

test: $(VENV)/.dev
	$(PY) -m pytest $(PYTEST_ARGS)

# Fault scenarios (tests/faults): a throwaway PostgreSQL cluster (needs the server binaries,
# FAULTS_PG_BIN, default /usr/lib/postgresql/15/bin), real gunicorn, the processor, the simulator's --verify.
# FAULTS_BURST_SIZE: postbacks in the backlog-burst scenario.
faults: $(VENV)/.dev
	$(PY) -m pytest -m faults tests/faults -p no:cacheprovider -s $(PYTEST_ARGS)

# ruff, and the import contracts in pyproject.toml (imports go one way, no cycles).
lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# Known vulnerabilities in the installed requirements (pip-audit): fails on any; says so and
# passes when no vulnerability service is reachable (AUDIT_REQUIRED=1 makes that fail too).
audit: $(VENV)/.dev
	$(PY) .ci/audit.py

# README images (docs/screenshots/) from the demo scenario: a throwaway SQLite database served by
# gunicorn, photographed by Debian's chromium through Playwright. SCREENSHOTS_PORT=0 picks a free port.
screenshots: $(VENV)/.dev
	$(PY) scripts/readme_screenshots.py --port $(or $(SCREENSHOTS_PORT),0)

format: $(VENV)/.dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
