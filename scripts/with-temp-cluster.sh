#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL 15 cluster.
#   scripts/with-temp-cluster.sh COMMAND [ARGS...]
# The cluster lives in a temp dir owned by the postgres OS user (the server
# refuses to run as root), listens only on a Unix socket in that dir, and is
# stopped and removed when the command ends.  PGHOST/PGPORT/PGUSER/PGDATABASE
# are exported for the command.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PGPORT=${PGPORT_TEMP:-$((54000 + RANDOM % 1000))}
dir=$(mktemp -d /tmp/pg_dp_cluster.XXXXXX)
chmod 755 "$dir"

as_pg() {
    if [ "$(id -u)" = 0 ]; then
        setpriv --reuid=postgres --regid=postgres --init-groups "$@"
    else
        "$@"
    fi
}
[ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"

cleanup() {
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT

as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log"; exit 1; }
as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o \
    "-k $dir -p $PGPORT -c listen_addresses='' -c fsync=off -c max_worker_processes=40 ${PG_EXTRA_OPTS:-}" start >/dev/null \
    || { cat "$dir/server.log"; exit 1; }

export PGHOST=$dir PGPORT PGUSER=postgres PGDATABASE=postgres PG_DP_CLUSTER_DIR=$dir
set +e
"$@"
rc=$?
set -e
if [ $rc -ne 0 ] && [ -f "$dir/server.log" ]; then
    echo "--- server log (last 40 lines) ---" >&2
    tail -n 40 "$dir/server.log" >&2
fi
exit $rc
