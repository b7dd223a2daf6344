import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")


def pytest_collection_modifyitems(config, items):
    # Unit tests need no server; everything else is an integration test.
    for item in items:
        if "/unit/" not in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def pg():
    """One real PostgreSQL server for the whole session."""
    from pgserver import PgServer

    server = PgServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def db(pg, request):
    """A fresh database with pg_dp installed, one per test module; yields its name."""
    name = re.sub(r"\W", "_", request.module.__name__.split(".")[-1]).lower()
    pg.create_database(name)
    yield name


@pytest.fixture(scope="module")
def conn(pg, db):
    """An autocommit psycopg connection to the module's database."""
    with pg.connect(db) as c:
        yield c


def shared_data(*parts):
    """Path of a shared data set, or skip the test with a clear reason when absent."""
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(path):
        pytest.skip(f"shared data set {os.path.join(*parts)} not found at {SHARED_DATA}")
    return path
