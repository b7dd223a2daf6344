"""A throwaway Citus cluster for the tests: a coordinator and two workers.

Three PgServer instances (test/support/pgserver.py: initdb and the postmaster as the
`postgres` OS user, Unix sockets only, listen_addresses ''), each with
`shared_preload_libraries = 'citus'` (Citus insists on being first; pg_dp may
follow it, preload='citus,pg_dp'), or else pg_dp's library loaded per session of the
`postgres` database (ALTER DATABASE ... SET session_preload_libraries, what the
docs/citus.md suggests).  Citus and pg_dp are created in the `postgres` database of
every node; the coordinator knows itself and the workers by their socket
directories.  scripts/citus.sh builds Citus from ../shared/vendor when it is
missing.
"""

import os

from pgserver import PgServer

PKGLIBDIR = "/usr/lib/postgresql/15/lib"


def citus_available():
    return os.path.exists(os.path.join(PKGLIBDIR, "citus.so"))


class CitusCluster:
    """Coordinator + `workers` workers; stop() stops and removes them all."""

    def __init__(self, workers=2, preload="citus", settings=None):
        extra = settings or {}
        settings = {
            "shared_preload_libraries": f"'{preload}'",
            "max_connections": "200",
            "citus.shard_count": "8",
            # Citus's own connections between the nodes of one machine.
            "citus.max_adaptive_executor_pool_size": "4",
            **extra,
        }
        self.nodes = []
        try:
            for _ in range(workers + 1):
                self.nodes.append(PgServer(settings))
            for node in self.nodes:
                with node.connect() as conn:
                    conn.execute("CREATE EXTENSION citus")
            coord = self.coordinator
            with coord.connect() as conn:
                conn.execute("SELECT citus_set_coordinator_host(%s, %s)", (coord.host, coord.port))
                for w in self.workers:
                    conn.execute("SELECT citus_add_node(%s, %s)", (w.host, w.port))
            # pg_dp on every node: created on the coordinator, Citus propagates the
            # CREATE EXTENSION to the workers (the library and files are on each).
            with coord.connect() as conn:
                conn.execute("CREATE EXTENSION pg_dp CASCADE")
                # (Citus propagates this to the workers too)
                conn.execute("ALTER DATABASE postgres SET search_path = public, dp")
                if "pg_dp" not in preload.split(","):
                    conn.execute("ALTER DATABASE postgres SET session_preload_libraries = 'pg_dp'")
            for w in self.workers:
                with w.connect() as conn:
                    have = conn.execute(
                        "SELECT count(*) FROM pg_extension WHERE extname = 'pg_dp'").fetchone()[0]
                    if not have:
                        conn.execute("CREATE EXTENSION pg_dp CASCADE")
        except Exception:
            self.stop()
            raise

    @property
    def coordinator(self):
        return self.nodes[0]

    @property
    def workers(self):
        return self.nodes[1:]

    def connect(self, **kw):
        return self.coordinator.connect(**kw)

    def tail_logs(self, lines=30):
        return "\n".join(f"--- node {i} ---\n{n.tail_log(lines)}" for i, n in enumerate(self.nodes))

    def stop(self):
        for node in self.nodes:
            node.stop()
        self.nodes = []
