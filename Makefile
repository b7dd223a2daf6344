# pg_dp -- PGXS build.  `make help` lists the targets.
EXTENSION   = pg_dp
EXTVERSION  = 0.1.0

PG_CONFIG  ?= /usr/lib/postgresql/15/bin/pg_config
PYTHON     ?= /usr/bin/python3

MODULE_big  = pg_dp
# src/: pg_dp.c (entry point, settings), one folder per part (docs/ARCHITECTURE.md)
OBJS        = src/pg_dp.o \
              src/aggregates/layout.o src/aggregates/params.o src/aggregates/sum_state.o \
              src/aggregates/hist_state.o src/aggregates/state_text.o src/aggregates/final.o \
              src/aggregates/native.o src/aggregates/release.o src/aggregates/opendp.o \
              src/worker/session.o src/worker/serve.o src/worker/pool.o src/worker/spares.o src/worker/frontdoor.o \
              src/worker/measure.o src/worker/reply.o src/worker/pins.o src/worker/trust.o \
              src/sql_hook/hook.o \
              src/citus/citus.o src/citus/wrappers.o \
              src/writer/writer.o
DATA_built  = pg_dp--$(EXTVERSION).sql
EXTRA_CLEAN = pg_dp--$(EXTVERSION).sql results regression.diffs regression.out python_udfs/build python_udfs/*.egg-info

# pg_regress files live in test/regress/{sql,expected}; the install SQL in sql/ (as pgvector).
REGRESS      = $(patsubst test/regress/sql/%.sql,%,$(sort $(wildcard test/regress/sql/*.sql)))
REGRESS_OPTS = --inputdir=test/regress --load-extension=plpython3u --load-extension=pg_dp

# OpenDP's C library, the one the server's Python imports (the aggregates' noise without
# Python; src/aggregates/opendp.c), and the Python library it refers to.  Found at build time.
OPENDP_LIBRARY ?= $(shell $(PYTHON) -c "import importlib.util, os; s = importlib.util.find_spec('opendp'); print(os.path.join(os.path.dirname(s.origin), 'lib', 'opendp.abi3.so') if s else '')" 2>/dev/null)
PYTHON_LIBRARY ?= $(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_config_var('INSTSONAME') or '')" 2>/dev/null)

PG_CPPFLAGS = -I$(srcdir)/src -DPG_DP_OPENDP_LIBRARY='"$(OPENDP_LIBRARY)"' -DPG_DP_PYTHON_LIBRARY='"$(PYTHON_LIBRARY)"'
PG_CFLAGS   = -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers

# The install script is assembled from sql/*.sql, one file per topic.
EXTENSION_SQL = $(sort $(wildcard sql/*.sql))

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
endif

.DEFAULT_GOAL := all

pg_dp--$(EXTVERSION).sql: $(EXTENSION_SQL)
	cat $^ > $@

.PHONY: help deps install-python demo test installcheck-temp pytest bench dist test-citus test-synthesis-suite test-bi test-long

help:            ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18

deps:            ## install PostgreSQL 15, PL/Python, build tools and Python packages (as root)
	scripts/install-deps.sh

# PY_TARGET=DIR installs the engine into DIR instead (a private copy for development: the
# server then needs PYTHONPATH=DIR in its environment; see docs/ARCHITECTURE.md).
PY_TARGET ?=

install-python:  ## install the Python engine where the server's plpython3u imports from
ifeq ($(PY_TARGET),)
	$(PYTHON) -m pip install --quiet --break-system-packages --root-user-action=ignore --no-deps --no-build-isolation --force-reinstall ./python_udfs
	rm -rf python_udfs/build python_udfs/*.egg-info
else
	mkdir -p $(PY_TARGET) && rm -rf $(PY_TARGET)/pg_dp && cp -r python_udfs/pg_dp $(PY_TARGET)/ && chmod -R a+rX $(PY_TARGET)
endif

install: install-python

demo: deps       ## build, install, start a throwaway cluster, answer DP questions on Adult
	$(MAKE) install
	scripts/demo.sh

test: deps       ## all tests: pg_regress on a throwaway cluster, then pytest against real servers
	$(MAKE) install
	scripts/citus.sh build-if-vendored
	scripts/with-temp-cluster.sh $(MAKE) installcheck
	$(PYTHON) -m pytest -q -m "not long" --durations=25 test

pytest:          ## only the pytest suite of make test (after make install)
	$(PYTHON) -m pytest -q -m "not long" --durations=25 test

test-long: deps  ## the checks that take minutes each (marked long): every phase of a stopped synthesis run, the large Kamino constraint sets
	$(MAKE) install
	$(PYTHON) -m pytest -q -m long test

bench:           ## aggregate benchmark on 10M rows (bench/RESULTS.md)
	$(PYTHON) bench/aggregates.py

dist:            ## source archive for PGXN
	git archive --format zip --prefix=pg_dp-$(EXTVERSION)/ -o pg_dp-$(EXTVERSION).zip HEAD

test-citus: deps ## pg_dp on Citus: build Citus from ../shared/vendor if missing, coordinator + 2 workers, test/integration/test_citus.py
	$(MAKE) install
	scripts/citus.sh test

# SDMETRICS_PYTHON: a Python with sdmetrics (a bench-only dependency, never the server's), e.g. a
# venv made with --system-site-packages; without it the SDMetrics reports are left out.
SDMETRICS_PYTHON ?=

test-synthesis-suite: ## synthesis on the schema-and-constraint suite at full size (about 3 min on 2 cores): figures in bench/RESULTS.md
	$(MAKE) install
	$(PYTHON) bench/suite.py --cases store sales chinook zipf tpcds tax tax_grid $(if $(SDMETRICS_PYTHON),--sdmetrics $(SDMETRICS_PYTHON))

test-bi:         ## real BI software as a restricted role: Malloy (npm) and Superset (PyPI venv) in build/bi-tools, the star schema, JDBC/psycopg/SQLAlchemy
	$(MAKE) install
	scripts/bi-tools.sh
	PG_DP_BI_TOOLS=$(CURDIR)/build/bi-tools $(PYTHON) -m pytest -q test/integration/test_bi_tools.py \
		test/integration/test_bi_star.py test/integration/test_bi_clients.py test/attacks/test_attack_bi_sql.py
