"""Attacks on what synthesis learns from the data besides its model (issue 21): ranges of dates
and audit columns, grids of values, and the checks of declarations.

- a unit's outlying date (or last_update) must not become the copy's range: DP bounds grow from
  the data's fullest blocks over adjacent passing ones, never to an exact extreme;
- a unit's value off the grid every other row sits on must not show in the copy: the grid is
  chosen with DP from noisy shares (at least 98% of rows), never from "every value";
- a personal column hidden behind a first page of blanks must not be declared public without
  a confirmation (the content check read the first 200 non-NULL values only: blank strings
  and placeholders hid 60 emails after them);
- a grid step is declared by an administrator only, and a step the column cannot hold is
  refused with a SQLSTATE and a hint, nothing stored.
"""

import psycopg
import pytest

from datasets import analyst_module, synthesize

MALLORY = "asd_mallory"


@pytest.fixture(scope="module", autouse=True)
def roles(conn):
    yield from analyst_module(conn, MALLORY)


@pytest.fixture
def mallory(pg, db):
    with pg.connect(db, user=MALLORY) as c:
        yield c


def test_attack_outlying_date_of_one_unit_never_sets_the_copys_range(conn):
    """1,500 customers' visits in 2023 (and rows written in June 2025), one customer's in 2091.
    The copy's dates stay in the DP range of the others: the outlier's 4-year block is far from
    the data's run, and a far block joins the bounds only when its noisy count passes a
    threshold that any empty block reaches with p <= 1e-10 (one row raises that by e^(1/scale)
    at most), and the zooms inside the bounds grow from the fullest bins: the copy reaching 2080
    has p < 1e-9.  (Checked without noise on the blocks and with every block holding a row in
    the bounds: the zooms still left 2091 out, so this test guards the whole path, not one step.)"""
    conn.execute("""CREATE TABLE visits (id int PRIMARY KEY, customer int NOT NULL, visited date NOT NULL,
                    last_update timestamp NOT NULL)""")
    conn.execute("""INSERT INTO visits SELECT g, g, DATE '2023-01-01' + (g * 7) % 365,
                    TIMESTAMP '2025-06-01' + (g % 50) * interval '1 hour' FROM generate_series(1, 1500) g""")
    conn.execute("INSERT INTO visits VALUES (1501, 1501, DATE '2091-03-03', TIMESTAMP '2091-03-03 04:05')")
    conn.execute("SELECT dp.protect('visits', dataset => 'visits', privacy_unit => 'customer')")
    conn.execute("SELECT dp.grant_budget('postgres', 'visits', 100, 0.01)")
    synthesize(conn, "public.visits", epsilon=1.0)
    top, audit = conn.execute("SELECT max(visited), max(last_update) FROM dp_synthetic.visits").fetchone()
    assert top.year < 2080 and audit.year < 2080


def test_attack_off_grid_value_of_one_unit_does_not_show_in_the_copy(conn):
    """20,000 salaries in steps of 1,000, one victim's 12,345.  The grid is chosen from noisy
    shares (discrete Gaussian, sd about 4.6 rows at epsilon 8: a share off by 0.02 is 20 sd away,
    p < 1e-9), and 19,999 of 20,000 rows on the grid pass its 98%: the copy is on the grid
    whether the victim is there or not, and holds no value off it.  (A grid taken only when
    every value sits on it, a test the victim fails alone, tells the victim's presence.)"""
    conn.execute("CREATE TABLE pay (id int PRIMARY KEY, salary int NOT NULL)")
    conn.execute("INSERT INTO pay SELECT g, 1000 * (1 + g % 100) FROM generate_series(1, 20000) g")
    conn.execute("UPDATE pay SET salary = 12345 WHERE id = 777")
    conn.execute("SELECT dp.protect('pay')")
    conn.execute("SELECT dp.set_bounds('pay', 'salary', 0, 200000)")
    conn.execute("SELECT dp.grant_budget('postgres', 'pay', 100, 0.01)")
    notices = synthesize(conn, "public.pay", epsilon=8.0)
    assert any("salary in steps of 1000" in n for n in notices)
    assert conn.execute("SELECT count(*) FROM dp_synthetic.pay WHERE salary % 1000 <> 0").fetchone()[0] == 0


def test_attack_personal_column_hidden_behind_blanks_is_not_declared_public_silently(conn):
    """The first 300 contacts are blank or placeholders, then 60 emails: declaring the table
    public without confirm => true is refused (55000) naming the column, and nothing is
    declared; with the confirmation it is."""
    conn.execute("CREATE TABLE partner (code int PRIMARY KEY, contact text)")
    conn.execute("INSERT INTO partner SELECT g, CASE WHEN g % 3 = 0 THEN '' WHEN g % 3 = 1 THEN 'n/a' ELSE ' - ' END "
                 "FROM generate_series(1, 300) g")
    conn.execute("INSERT INTO partner SELECT g, 'person' || g || '@example.org' FROM generate_series(301, 360) g")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as e:
        conn.execute("SELECT dp.declare_public('partner')")
    assert "contact" in str(e.value) and e.value.diag.message_hint
    assert conn.execute("SELECT count(*) FROM dp.public_tables WHERE table_name = 'partner'::regclass").fetchone()[0] == 0
    conn.execute("SELECT dp.declare_public('partner', confirm => true)")
    assert conn.execute("SELECT count(*) FROM dp.public_tables WHERE table_name = 'partner'::regclass").fetchone()[0] == 1


def test_attack_grid_step_declared_by_anyone_or_wrong_is_refused_and_nothing_stored(conn, mallory):
    conn.execute("CREATE TABLE wages (id int PRIMARY KEY, amount numeric(10,2), label text, n int)")
    conn.execute("SELECT dp.protect('wages')")
    conn.execute(f"GRANT USAGE ON SCHEMA dp TO {MALLORY}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        mallory.execute("SELECT dp.set_step('public.wages', 'amount', 100)")
    for column, step, error in (("amount", 0, psycopg.errors.InvalidParameterValue),
                                ("amount", -5, psycopg.errors.InvalidParameterValue),
                                ("amount", 0.001, psycopg.errors.InvalidParameterValue),
                                ("n", 2.5, psycopg.errors.InvalidParameterValue),
                                ("label", 10, psycopg.errors.DatatypeMismatch)):
        with pytest.raises(error) as e:
            conn.execute("SELECT dp.set_step('wages', %s, %s::numeric)", (column, str(step)))
        assert e.value.diag.message_hint, (column, step)
    assert conn.execute("SELECT count(*) FROM dp.protected_columns WHERE table_name = 'wages'::regclass "
                        "AND step IS NOT NULL").fetchone()[0] == 0
    conn.execute("SELECT dp.set_step('wages', 'amount', 0.5)")
    assert conn.execute("SELECT step FROM dp.protected_columns WHERE table_name = 'wages'::regclass "
                        "AND column_name = 'amount'").fetchone()[0] == 0.5
