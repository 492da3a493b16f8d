# The one entry point. `make run` installs and shows the demo; `make test` is what CI runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install validate plan run test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

validate: install          ## validate the configuration in this repository
	$(BIN)/runner validate

run: install               ## the demo: validate, plan, run the main job, then `runner up` (Ctrl-C stops)
	$(BIN)/runner validate
	$(BIN)/runner plan
	$(BIN)/runner run health-check
	$(BIN)/runner up

lint: install
	$(BIN)/ruff check runner tests bench
	$(BIN)/mypy runner

# axe-core (the dashboard's accessibility check, tests/integration/test_dashboard_done.py),
# pinned, from the npm registry into tests/.npm: a test tool, nothing users build or install
AXE := tests/.npm/node_modules/axe-core/axe.min.js
$(AXE):
	npm install --prefix tests/.npm --no-audit --no-fund --no-save axe-core@4.14.1

test: lint $(AXE)          ## lint, type-check, then the whole suite (real git, real processes)
	$(BIN)/pytest -n auto

bench: install             ## benchmarks, figures side by side with their floors
	$(BIN)/python bench/run.py
	$(BIN)/python bench/execution.py
	$(BIN)/python bench/celery_runs.py
	$(BIN)/python bench/reconcile_cost.py
	$(BIN)/python bench/report_branch.py
	$(BIN)/python bench/commit_to_effect.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/idle.py
	$(BIN)/python bench/beat_scale.py

clean:
	rm -rf $(VENV) tests/.npm .runner .pytest_cache .mypy_cache .ruff_cache *.egg-info
