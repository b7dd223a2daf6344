#!/usr/bin/env bash
# Install the BI software `make test-bi` drives, outside the server's Python:
#   build/bi-tools/venv   Apache Superset 6.1 (PyPI) in its own virtual environment
#   build/bi-tools/npm    Malloy's compiler and PostgreSQL connection (npm)
#   build/bi-tools/superset-template.db   a migrated Superset metadata database (copied per test)
# Idempotent: what is there is kept.  PG_DP_BI_TOOLS=DIR installs into DIR instead.
set -euo pipefail
dir=${PG_DP_BI_TOOLS:-$(pwd)/build/bi-tools}
mkdir -p "$dir"

if ! /usr/bin/python3 -m venv --help >/dev/null 2>&1 || ! command -v npm >/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3-venv nodejs npm >/dev/null
fi

if [ ! -x "$dir/venv/bin/superset" ]; then
    /usr/bin/python3 -m venv "$dir/venv"
    # Superset's wheel leaves out or under-pins these; its own requirements pin them so
    "$dir/venv/bin/pip" install -q "apache-superset==6.1.0" "flask-caching==2.3.1" "psycopg2-binary==2.9.9" \
        cachetools rich
fi

if [ ! -d "$dir/npm/node_modules/@malloydata/db-postgres" ]; then
    mkdir -p "$dir/npm"
    (cd "$dir/npm" && { [ -f package.json ] || npm init -y >/dev/null; } &&
     # antlr4ts 0.5.0-dev satisfies Malloy's ^0.5.0-alpha.4 but lacks the module layout Malloy needs
     npm install --no-audit --no-fund @malloydata/malloy@0.0.431 @malloydata/db-postgres@0.0.431 \
         antlr4ts@0.5.0-alpha.4 >/dev/null)
fi

cat > "$dir/superset_config.py" <<'PY'
# Superset settings for pg_dp's tests: a throwaway SQLite metadata database, no caches.
import os
SECRET_KEY = "pg_dp-test-only-not-a-secret-0123456789"
SQLALCHEMY_DATABASE_URI = "sqlite:///" + os.environ["SUPERSET_HOME"] + "/superset.db"
CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
FILTER_STATE_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
EXPLORE_FORM_DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
WTF_CSRF_ENABLED = False
PY

if [ ! -f "$dir/superset-template.db" ]; then
    home=$(mktemp -d)
    SUPERSET_HOME=$home SUPERSET_CONFIG_PATH=$dir/superset_config.py "$dir/venv/bin/superset" db upgrade \
        >"$home/upgrade.log" 2>&1 || { tail -20 "$home/upgrade.log"; exit 1; }
    cp "$home/superset.db" "$dir/superset-template.db"
    rm -rf "$home"
fi
echo "BI tools in $dir"
