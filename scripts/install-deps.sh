#!/usr/bin/env bash
# Install everything pg_dp needs on Debian 12, as root; idempotent and quick when
# everything is already there.  Python packages go where the server's
# plpython3u imports from: /usr/bin/python3's dist-packages (docs/ARCHITECTURE.md, Working on pg_dp).
set -euo pipefail

APT_PACKAGES="postgresql-15 postgresql-contrib postgresql-plpython3-15 postgresql-server-dev-15 \
postgresql-client-15 build-essential python3-pip util-linux \
libpostgresql-jdbc-java default-jre-headless"   # the last two: the JDBC client tests
PY_PACKAGES="numpy>=1.24 opendp>=0.16,<0.17 pglast>=7 scipy>=1.10 pytest>=7 psycopg[binary]>=3.1 testing.postgresql>=1.3 mbi==2.0.0 scikit-learn>=1.3 \
sqlalchemy>=2.0 pandas>=2.0 duckdb>=1.4 duckdb-ext-tpch>=1.4 duckdb-ext-tpcds>=1.4"   # the last three: TPC-H and TPC-DS data (bench/schema.py, bench/suite.py)
PYTHON=/usr/bin/python3

if [ "$(id -u)" != 0 ]; then
    echo "install-deps: run as root (apt-get and pip install into the system Python)" >&2
    exit 1
fi

# scripts/citus.sh adds Citus's build dependencies
APT_PACKAGES="$APT_PACKAGES ${PG_DP_EXTRA_APT:-}"
missing=""
for p in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "install-deps: apt-get install$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing
fi

# The Debian packages create a 'main' cluster we do not use; keep it from holding a port.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q '^15 *main .*online'; then
    pg_ctlcluster 15 main stop || true
fi

if ! $PYTHON - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
need = {"numpy": "1.24", "opendp": "0.16", "pglast": "7", "scipy": "1.10", "pytest": "7",
        "psycopg": "3.1", "testing.postgresql": "1.3", "mbi": "2.0",
        "scikit-learn": "1.3", "jax": "0.4", "sqlalchemy": "2.0", "pandas": "2.0", "duckdb": "1.4",
        "duckdb-ext-tpch": "1.4", "duckdb-ext-tpcds": "1.4"}
def v(s): return tuple(int(x) for x in s.split(".")[:2] if x.isdigit())
for name, low in need.items():
    if v(m.version(name)) < v(low):
        sys.exit(1)
import opendp
if v(m.version("opendp")) >= (0, 17):
    sys.exit(1)
PY
then
    echo "install-deps: pip install into $($PYTHON -c 'import sysconfig; print(sysconfig.get_path("purelib"))') and friends"
    $PYTHON -m pip install --quiet --break-system-packages --root-user-action=ignore $PY_PACKAGES
fi
