"""The extension installs, and every aggregate answers through psycopg and psql."""


def test_aggregates_answer(conn):
    conn.execute("CREATE TABLE t AS SELECT g AS i, (g % 100)::float8 AS x FROM generate_series(1, 10000) g")
    row = conn.execute(
        "SELECT dp_count(*), dp_count(x), dp_sum(i, 0, 10000), dp_sum(x, 0, 100), dp_avg(x, 0, 100),"
        " dp_var(x, 0, 100), dp_stddev(x, 0, 100), dp_median(x, 0, 100), dp_quantile(x, 0.9, 0, 100) FROM t"
    ).fetchone()
    count, count_x, sum_i, sum_x, avg, var, sd, median, q90 = row
    assert abs(count - 10000) < 100 and abs(count_x - 10000) < 100
    assert isinstance(sum_i, int) and abs(sum_i - 50005000) < 10000 * 100
    assert abs(sum_x - 495000) < 100 * 100
    assert 45 < avg < 54 and 700 < var < 970 and 26 < sd < 31
    assert 40 < median < 60 and 80 < q90 < 100


def test_psql_client(pg, db):
    out = pg.psql("SELECT dp_count(*) > 100 AS ok FROM generate_series(1, 1000)", dbname=db)
    assert " t" in out.stdout
