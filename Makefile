# The README's quick start is exactly `make demo` and `make test`.
# Each creates .venv if missing, installs torch 2.13.0 (the CPU build on disk) first and alone,
# so that nothing later lets pip pick a multi-GB CUDA build, then the package with its extras.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck pytest install system-deps labextension clean bench-serving bench-rollouts bench-monitoring bench-runbooks bench-blocked bench-dashboards bench-jupyterlab bench-deps bench-experiments bench-features bench-optimize bench-api bench-replica-start

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# This machine sets PYTHONDONTWRITEBYTECODE=1: the .pyc files written at install are the only ones there
# ever are (without them every process compiles torch, MLflow and Ray on every import: tried, the suite
# crawled). pip compiles on one core as it installs; here pip installs without compiling and compileall
# then compiles everything on both cores, `workbench` itself included (installed editable, it was compiled
# afresh in every process: ~0.2 s of CPU per control plane or CLI call). Files compileall cannot compile
# (Python 2 leftovers in some packages) are skipped, as pip skips them.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --no-compile torch==2.13.0
	$(BIN)/pip install --quiet --no-compile hatchling editables 'hatch-jupyter-builder>=0.9'
	SKIP_JUPYTER_BUILDER=1 $(BIN)/pip install --quiet --no-compile --no-build-isolation -e '.[dev]'
	# jsonschema imports rfc3987-syntax (pulled in by Jupyter's jsonschema[format-nongpl]) whenever it is
	# present, and that compiles ~35 Earley parsers: 2.6 s of CPU in every process importing jsonschema
	# (each Ray worker, Jupyter server, papermill run), for the `iri` format no schema here uses
	# (python-jsonschema/jsonschema#1428). Without it jsonschema skips that one format; pip check agrees.
	$(BIN)/pip uninstall --quiet --yes rfc3987-syntax
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib workbench >/dev/null || true
	touch $(STAMP)

install: $(STAMP)

# KServe's Python package, in its own environment: every kserve release pins psutil<6, which this
# project's ipython (psutil>=7) cannot share. The export tests load generated manifests into its
# V1beta1InferenceService there (tests/serving/test_integrations.py).
KSERVE_VENV := .venv-kserve
KSERVE_STAMP := $(KSERVE_VENV)/.installed-stamp
$(KSERVE_STAMP):
	$(PYTHON) -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/pip install --quiet 'kserve>=0.21,<0.22' pyyaml
	touch $(KSERVE_STAMP)

# PostgreSQL runs the state-store tests a second time; Debian's chromium runs the browser tests (never
# `playwright install`); Debian's prometheus (promtool and the server) checks and scrapes /metrics.
# What is missing is installed after one apt-get update, as a fresh machine needs.
system-deps:
	@missing=""; \
	if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then missing="$$missing postgresql"; fi; \
	if [ ! -x /usr/bin/chromium ]; then missing="$$missing chromium"; fi; \
	if [ ! -x /usr/bin/redis-server ]; then missing="$$missing redis-server"; fi; \
	if [ ! -x /usr/bin/promtool ] || [ ! -x /usr/bin/prometheus ]; then missing="$$missing prometheus"; fi; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing (for the state-store, browser, feature-store and Prometheus tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The JupyterLab extension, built from extensions/workbench-lab with jlpm (node from Debian when
# missing; yarn.lock pins every package) and linked into the venv with its server extension enabled,
# as the wheel installs them. Nothing built is committed.
LAB := extensions/workbench-lab
LAB_BUILT := workbench/jupyter/labextension/static/style.js
LAB_SOURCES := $(wildcard $(LAB)/src/*.ts $(LAB)/style/*) $(LAB)/package.json $(LAB)/yarn.lock $(LAB)/tsconfig.json

$(LAB_BUILT): $(LAB_SOURCES) | $(STAMP)
	@command -v node >/dev/null || (echo "installing nodejs (to build the JupyterLab extension)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs >/dev/null)
	cd $(LAB) && export PATH="$(CURDIR)/$(BIN):$$PATH" && jlpm install --immutable >/dev/null && jlpm build:prod >/dev/null
	mkdir -p $(VENV)/share/jupyter/labextensions $(VENV)/etc/jupyter/jupyter_server_config.d
	ln -sfn $(CURDIR)/workbench/jupyter/labextension $(VENV)/share/jupyter/labextensions/mlops-workbench
	cp jupyter-config/server-config/workbench.json $(VENV)/etc/jupyter/jupyter_server_config.d/

labextension: $(LAB_BUILT)

demo: install
	$(BIN)/workbench demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install system-deps labextension $(KSERVE_STAMP)
	WORKBENCH_REQUIRE_POSTGRES=1 $(BIN)/pytest -n 2 --dist loadgroup --no-loadscope-reorder --durations=10

# The checks run beside the installs pytest needs and beside pytest itself: the install is mostly one core
# (the KServe environment's install hides behind the main one), and mypy's ~55 s of one core fit in the
# idle share of pytest's two workers (about a quarter of their time is waiting on servers) instead of
# delaying its start. A failed check still fails `make test`, once pytest has finished.
test:
	$(MAKE) -j3 lint typecheck pytest

# Benchmarks need wrk as the load generator (C, one thread: cheap on a 2-core machine).
bench-deps:
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)

bench-serving: install bench-deps
	$(BIN)/python benchmarks/serving.py --write-docs
	$(BIN)/python benchmarks/grpc_serving.py --write-docs
	$(BIN)/python benchmarks/log_cost.py --write-docs
	$(BIN)/python benchmarks/demo_world.py --write-docs
	$(BIN)/python benchmarks/ray_serving.py --write-docs

# Rollouts: breach-to-stable of automatic rollbacks, failed requests in switches (Python load, no wrk).
bench-rollouts: install
	$(BIN)/python benchmarks/rollouts.py --write-docs

# Monitoring: live drift vs an Evidently report on one window, prediction-log writer throughput.
bench-monitoring: install
	$(BIN)/python benchmarks/monitoring.py --write-docs
	$(BIN)/python benchmarks/history.py --write-docs

# Runbooks: a run's cost over papermill in-process; the retraining loop from drift to promotion.
bench-runbooks: install
	$(BIN)/python benchmarks/runbooks.py --write-docs

# Nothing waits behind a slow thing: calls on one endpoint while another's deploy is held in warm-up.
bench-blocked: install
	$(BIN)/python benchmarks/blocked_deploy.py --write-docs

# Dashboards in Debian's chromium (system-deps installs it): page load, change-to-page latency,
# control-plane load with 1 and 20 pages open, memory over 10 minutes of live updates (~30 minutes).
bench-dashboards: install system-deps
	$(BIN)/python benchmarks/dashboards.py --write-docs

# The JupyterLab extension: rollback click → sidebar, control-plane load with 0, 1 and 5 tabs (~6 minutes).
bench-jupyterlab: install system-deps labextension
	$(BIN)/python benchmarks/jupyterlab.py --write-docs

# A/B experiment statistics: seeded simulations of false positives, power, CUPED, SRM and decide() (~2 minutes).
bench-features: install system-deps
	$(BIN)/python benchmarks/features.py --write-docs
	$(BIN)/python benchmarks/features_serving.py --write-docs

# Optimised variants of the demo's v2 and v3, each measured beside its parent through the product's API.
bench-optimize: install
	$(BIN)/python benchmarks/optimize.py --write-docs

bench-experiments: install
	$(BIN)/python benchmarks/experiments.py --write-docs

clean:
	rm -rf $(VENV) .workbench .pytest_cache .mypy_cache .ruff_cache workbench/jupyter/labextension \
		$(LAB)/node_modules $(LAB)/lib $(LAB)/tsconfig.tsbuildinfo

bench-api: install
	$(BIN)/python benchmarks/api_latency.py --write-docs

# Replica starts: deploy wall time, CPU and unique memory, forked by the fork server vs fresh interpreters.
bench-replica-start: install
	$(BIN)/python benchmarks/replica_start.py --write-docs
