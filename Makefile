# gridmap on a fresh Debian 12 machine: `make run` (API on http://127.0.0.1:8000/) and `make test`.
# Everything else (Debian packages, the virtualenv, the local PostGIS cluster under var/, the
# schema, the demo data) is set up on the way, and skipped quickly when it is already there.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Debian packages the project needs. Append here; `make deps` installs whatever is missing.
# chromium and fonts-noto-cjk: tests/test_maps.py opens the maps in a headless browser.
DEB_PACKAGES := postgresql-15 postgresql-15-postgis-3 postgresql-15-pgrouting acl chromium fonts-noto-cjk
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: help deps venv assets db run test stop lint clean

help:
	@echo "make run     install what is missing, start the local PostGIS cluster, migrate, load the"
	@echo "             demo, serve on HOST:PORT (default 127.0.0.1:8000)"
	@echo "make test    the same set-up, then pytest (extra arguments: PYTEST_ARGS='-k foo -x')"
	@echo "make deps    install missing Debian packages: $(DEB_PACKAGES)"
	@echo "make venv    create .venv and install the project (again when pyproject.toml changes)"
	@echo "make assets  install the maps' Leaflet, fonts and the rest (npm ci in maps/assets)"
	@echo "make db      start the local cluster (data in var/) and migrate the schema"
	@echo "make stop    stop the local cluster"
	@echo "make lint    ruff check"
	@echo "make bench-imports  ogr2ogr against the importer's raw load step, and the full building"
	@echo "             import, on 100,000 footprints (installs gdal-bin); figures in BENCHMARKS.md"
	@echo "make loadtest  50 clients for 60 s against a real server (BENCH_ARGS='--clients 20');"
	@echo "             checks every acknowledged write is stored once; figures in BENCHMARKS.md"
	@echo "make clean   stop the cluster and DELETE var/ (the local database and its passwords)"

# No apt call at all when everything is installed: dpkg-query answers in milliseconds.
deps:
	@missing=""; \
	for pkg in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${db:Status-Abbrev}' "$$pkg" 2>/dev/null | grep -q '^ii' \
	    || missing="$$missing $$pkg"; \
	done; \
	if ! $(BIN)/python -c '' 2>/dev/null; then \
	  if ! command -v $(PYTHON) >/dev/null; then missing="$$missing python3 python3-venv"; \
	  elif ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null; then missing="$$missing python3-venv"; \
	  fi; \
	fi; \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null; then \
	    echo "not a Debian system: install$$missing (or their equivalents) yourself" >&2; exit 1; \
	  fi; \
	  if [ -n "$(SUDO)" ] && ! command -v sudo >/dev/null; then \
	    echo "missing Debian packages:$$missing; run 'make deps' as root (no sudo here)" >&2; exit 1; \
	  fi; \
	  echo "installing Debian packages:$$missing"; \
	  $(APT) update; \
	  $(APT) install -y --no-install-recommends $$missing; \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml | deps
	@$(BIN)/python -c '' 2>/dev/null || $(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[dev]'
	@touch $@

# The maps' scripts, styles and fonts from npm (maps/assets.py serves and inlines them): again
# when the lock file changes. Node.js and npm from Debian when missing.
ASSETS := maps/assets
ASSETS_STAMP := $(ASSETS)/node_modules/.installed

assets: $(ASSETS_STAMP)

$(ASSETS_STAMP): $(ASSETS)/package-lock.json
	@command -v npm >/dev/null || { echo "installing Node.js and npm"; $(APT) update; \
	  $(APT) install -y --no-install-recommends nodejs npm; }
	cd $(ASSETS) && npm ci --no-audit --no-fund --ignore-scripts
	@touch $@

db: venv assets
	$(BIN)/gridmap db up
	$(BIN)/gridmap db migrate

run: db
	$(BIN)/gridmap demo
	$(BIN)/gridmap auth demo-tokens
	$(BIN)/gridmap serve $(if $(HOST),--host '$(HOST)') $(if $(PORT),--port '$(PORT)')

test: db
	$(BIN)/pytest $(PYTEST_ARGS)

stop:
	@if [ -x $(BIN)/gridmap ]; then $(BIN)/gridmap db down; \
	elif [ -e var/pgdata/postmaster.pid ]; then \
	  echo "the cluster in var/ may run but .venv is missing: run 'make venv stop'" >&2; exit 1; \
	fi

lint: venv
	$(BIN)/ruff check .

clean: stop
	rm -rf var

# The side-by-side benchmark (bench/side_by_side.py): gridmap against PostGraphile 4 and the raw
# floor. Installs what it needs first: the `bench` extra (matplotlib), PostGraphile and its
# plugins (bench/peers, pinned), wrk. Arguments: BENCH_ARGS='--duration 5 --queries 1,2'.
.PHONY: bench
bench: db
	@{ $(BIN)/python -c 'import matplotlib' 2>/dev/null && [ -x $(BIN)/py-spy ]; } \
	  || $(BIN)/python -m pip install --disable-pip-version-check -e '.[bench]'
	@command -v npm >/dev/null || { echo "installing Node.js and npm"; $(APT) update; \
	  $(APT) install -y --no-install-recommends nodejs npm; }
	@[ -d bench/peers/node_modules ] || (cd bench/peers && npm ci --no-audit --no-fund)
	@command -v wrk >/dev/null || { echo "installing wrk"; $(APT) update; \
	  $(APT) install -y --no-install-recommends wrk; }
	$(BIN)/python bench/side_by_side.py $(BENCH_ARGS)

# How cost grows (bench/scaling.py): the side-by-side queries and the coverage, hotspot and import
# jobs on demo databases of 100,000, 1,000,000 and 5,000,000 households (gridmap_scale_*, kept for
# the next run), single client. Installs the `bench` extra (matplotlib) when missing.
# Arguments: BENCH_ARGS='--scales 100000 --job-runs 5'.
.PHONY: bench-scaling
bench-scaling: db
	@{ $(BIN)/python -c 'import matplotlib' 2>/dev/null && [ -x $(BIN)/py-spy ]; } \
	  || $(BIN)/python -m pip install --disable-pip-version-check -e '.[bench]'
	$(BIN)/python bench/scaling.py $(BENCH_ARGS)

# Walking routes (bench/routes.py): a 100-stop route with time windows on the walking network of
# a 40,000-household demo (gridmap_bench_routes, kept for the next run), solver time limit 1 s.
# Arguments: BENCH_ARGS='--runs 3 --full-search-timeout 0'.
.PHONY: bench-routes
bench-routes: db
	$(BIN)/python bench/routes.py $(BENCH_ARGS)

# GraphQL fuzzing (tests/test_fuzz.py, issue 11): schemathesis sends FUZZ_OPERATIONS generated
# operations (default 20,000; `make test` sends 2,000) as the public and each demo role; figures in
# bench/out/fuzz-N.json. Arguments: FUZZ_OPERATIONS=50000 FUZZ_SEED=12.
FUZZ_OPERATIONS ?= 20000
FUZZ_SEED ?= 11
.PHONY: fuzz
fuzz: db
	GRIDMAP_FUZZ_OPERATIONS=$(FUZZ_OPERATIONS) GRIDMAP_FUZZ_SEED=$(FUZZ_SEED) \
	  $(BIN)/pytest tests/test_fuzz.py -q -s $(PYTEST_ARGS)

# Case hotspots (bench/hotspots.py): district-wide hotspots on 150 m hexagons and one grid's case
# list on the 1,000,000-household demo (gridmap_bench_1m) with 500,000 cases (synthetic ones added
# once and kept). Arguments: BENCH_ARGS='--runs 5 --database gridmap_bench_hotspots'.
.PHONY: bench-hotspots
bench-hotspots: db
	$(BIN)/python bench/hotspots.py $(BENCH_ARGS)

# Building imports (bench/imports.py, issue 6): 100,000 made-up footprints (a GeoPackage) loaded by
# GDAL's ogr2ogr and by the importer's raw load step (COPY into its staging table) into the same
# database (gridmap_bench_imports, the default demo, kept for the next run), then the full import
# (validation, repair, placement). Installs Debian's gdal-bin (ogr2ogr) when missing.
# Arguments: BENCH_ARGS="--rounds 3 --file town.gpkg --key-field osm_id --name-field ''".
.PHONY: bench-imports
bench-imports: db
	@command -v ogr2ogr >/dev/null || { echo "installing gdal-bin"; $(APT) update; \
	  $(APT) install -y --no-install-recommends gdal-bin; }
	$(BIN)/python bench/imports.py $(BENCH_ARGS)

# Load test (bench/loadtest.py, issue 11): 50 clients for 60 s doing what grid workers, community
# staff, departments and the grid center do, against `gridmap serve` (its default workers) over
# gridmap_loadtest (the demo, loaded once and kept); then every acknowledged visit, case and step is
# looked for in the database. Installs the `bench` extra (py-spy, for --profile) when missing.
# Arguments: BENCH_ARGS='--clients 20 --duration 30 --think 0 --profile'.
.PHONY: loadtest
loadtest: db
	@[ -x $(BIN)/py-spy ] || $(BIN)/python -m pip install --disable-pip-version-check -e '.[bench]'
	$(BIN)/python bench/loadtest.py $(BENCH_ARGS)
