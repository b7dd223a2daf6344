#!/usr/bin/env bash
# make demo: a throwaway cluster, the Adult data set, and a psql session of DP answers.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=${PG_DP_ADULT_CSV:-$root/../shared/data/kamino/adult/adult.csv}
if [ ! -r "$data" ]; then
    echo "demo: the Adult data set is not at $data (set PG_DP_ADULT_CSV to its path)" >&2
    exit 1
fi
export PG_DP_DEMO_DATA=$data PG_DP_ROOT=$root
exec "$root/scripts/with-temp-cluster.sh" bash -c '
set -euo pipefail
createdb demo
psql -X -q -v ON_ERROR_STOP=1 -d demo -c "CREATE EXTENSION pg_dp CASCADE" 2>/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d demo -c "ALTER DATABASE demo SET session_preload_libraries = '"'"'pg_dp'"'"'"
psql -X -q -v ON_ERROR_STOP=1 -d demo -v datafile="$PG_DP_DEMO_DATA" -f "$PG_DP_ROOT/demo/adult.sql"
rows=$(psql -X -At -d demo -c "SELECT count(*) FROM adult")
echo "Loaded UCI Adult ($rows rows) into a throwaway PostgreSQL 15 cluster with pg_dp $(psql -X -At -d demo -c "SELECT extversion FROM pg_extension WHERE extname = '"'"'pg_dp'"'"'")."
psql -X -v ON_ERROR_STOP=1 -d demo --echo-queries -f "$PG_DP_ROOT/demo/questions.sql"
psql -X -d demo --echo-queries -f "$PG_DP_ROOT/demo/gateway.sql" 2>&1
psql -X -v ON_ERROR_STOP=1 -d demo --echo-queries -f "$PG_DP_ROOT/demo/synthesis.sql" 2>&1
echo "Demo finished; the cluster is stopped and removed."
'
