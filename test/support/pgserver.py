"""A real, throwaway PostgreSQL 15 server for the tests.

The server refuses to run as root, so when the tests run as root (CI) initdb
and the postmaster run as the `postgres` OS user through setpriv; the test
process itself stays root and talks to the server over a Unix socket.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import psycopg

PGBIN = os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin")


def _as_postgres(cmd):
    if os.geteuid() == 0:
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *cmd]
    return cmd


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """initdb + pg_ctl start in a temp dir; stop() removes everything."""

    def __init__(self, settings=None):
        self.dir = tempfile.mkdtemp(prefix="pg_dp_test_")
        os.chmod(self.dir, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = os.path.join(self.dir, "data")
        self.port = _free_port()
        self.host = self.dir
        subprocess.run(
            _as_postgres([f"{PGBIN}/initdb", "-D", self.data, "-U", "postgres", "-A", "trust",
                          "--no-sync", "--locale=C", "-E", "UTF8"]),
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        opts = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.dir}'",
            "port": str(self.port),
            "fsync": "off",
            "max_connections": "100",
            "max_worker_processes": "40",  # a pg_dp executor per analyst session
        }
        opts.update(settings or {})
        with open(os.path.join(self.data, "postgresql.auto.conf"), "a") as f:
            for k, v in opts.items():
                f.write(f"{k} = {v}\n")
        self.log = os.path.join(self.dir, "server.log")
        self.start()

    def start(self):
        subprocess.run(
            _as_postgres([f"{PGBIN}/pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start"]),
            check=True, stdout=subprocess.DEVNULL,
        )

    def shutdown(self, mode="fast"):
        """pg_ctl stop in the background, keeping the data directory (start() brings it back)."""
        return subprocess.Popen(
            _as_postgres([f"{PGBIN}/pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def conninfo(self, dbname="postgres", user="postgres"):
        return f"host={self.host} port={self.port} user={user} dbname={dbname}"

    def connect(self, dbname="postgres", user="postgres", autocommit=True):
        return psycopg.connect(self.conninfo(dbname, user), autocommit=autocommit)

    def psql(self, sql, dbname="postgres", user="postgres", check=True):
        """Run SQL through the real psql client; returns the CompletedProcess."""
        return subprocess.run(
            ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", self.host, "-p", str(self.port),
             "-U", user, "-d", dbname, "-c", sql],
            check=check, capture_output=True, text=True,
        )

    def create_database(self, name, extension=True):
        with self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        if extension:
            with self.connect(name) as conn:
                conn.execute("CREATE EXTENSION pg_dp CASCADE")
                conn.execute(f'ALTER DATABASE "{name}" SET search_path = public, dp')
        return name

    def tail_log(self, lines=40):
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        self.shutdown().wait()
        deadline = time.time() + 10
        while os.path.exists(os.path.join(self.data, "postmaster.pid")) and time.time() < deadline:
            time.sleep(0.1)
        shutil.rmtree(self.dir, ignore_errors=True)
