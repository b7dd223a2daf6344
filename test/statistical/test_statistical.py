"""Statistical tests: the released noise follows the distribution the mathematics says.

Every group of a GROUP BY is a separate release with independent noise, so
one `SELECT g, dp_xxx(...) FROM t GROUP BY g` over a table whose groups all
hold the same rows gives thousands of independent draws of one mechanism.

The reference distributions are derived here from the mechanisms' definitions
(src/aggregates/state.h and sum_state.c: the grid, release.py, OpenDP's documentation), never by
calling pg_dp code:

* dp_count / dp_sum: released - true value ~ discrete Laplace,
  P(k) = (1-p)/(1+p) p^|k|, p = exp(-1/b), b = sensitivity / epsilon
  (count: sensitivity 1, clamped at 0; sum: max(|lower|, |upper|) in grid units).
* dp_avg / dp_var / dp_stddev: a function of several noisy statistics; compared
  with a reference sample simulated from that function (stats_helpers).
* dp_quantile / dp_median: OpenDP make_noisy_max(negate=True) over 1025
  candidates, scale = 2 * sensitivity / epsilon (LInfDistance is not
  monotonic, so the map is 2 d_in / scale); exact selection probabilities of
  permute-and-flip / exponential-noise report-noisy-max.

Each test checks that the correct scale is accepted (log10 p > -12: a correct
extension fails with probability 1e-12) and that the very same test, with the
noise scale multiplied by 0.7 or 1.3, rejects far beyond that threshold
(log10 p < -20), which proves the test has the power to see a wrong scale.
Draw counts were chosen from simulations of the tests themselves: the wrong
scales reach log10 p of about -80 (x1.3) and -200 (x0.7) on average, about 7
standard deviations or more below -20, so the power checks do not flake either.

Run with -s to see the p-values.
"""

import math

import numpy as np
import pytest

import stats_helpers as H

pytestmark = [pytest.mark.statistical]

N_DLAP = 8000  # draws per discrete Laplace test
N_AVG = 8000
N_VAR = 6000
N_QUANTILE = 2500
N_EMPTY = 20000  # empty input: max(0, noise) carries less information per draw
ROWS = 20  # rows per group: i = 1..20
GRID_BITS = 40  # src/aggregates/state.h: max(|lower|, |upper|) spans about 2^40 grid units


def fetch_columns(conn, sql, ncols):
    rows = conn.execute(sql).fetchall()
    return [np.array([r[k] for r in rows], dtype=float) for k in range(1, ncols + 1)]


def grid_exponent(lower, upper):
    """src/aggregates/sum_state.c: values are put on a grid of 2^gexp with max(|lower|,|upper|) < 2^(gexp+40)."""
    return math.frexp(max(abs(lower), abs(upper)))[1] - GRID_BITS


# ---------------------------------------------------------------------------
# The reference distributions themselves (no database)
# ---------------------------------------------------------------------------

def test_reference_distributions_are_consistent():
    from scipy import integrate

    for b in (0.5, 3.0, 1e12):
        k = np.arange(-40, 41) * max(1.0, math.floor(b / 4))
        pmf = H.dlap_cdf(k, b) - H.dlap_cdf(k - 1, b)
        np.testing.assert_allclose(pmf, H.dlap_pmf(k, b), rtol=1e-9, atol=1e-15)
        assert H.dlap_cdf(-1e300, b) == 0 and H.dlap_cdf(1e300, b) == 1
    # permute-and-flip law == report-noisy-max with Exponential(scale) noise, integrated directly:
    # P(i) = integral over z >= max(y) of f_i(z) prod_{j != i} F_j(z)
    scores, scale = np.array([0, 3, 3, 7, 1, 0]), 2.0
    y = -scores.astype(float)
    direct = []
    for i in range(len(y)):
        def density(z, i=i):
            others = np.delete(y, i)
            return math.exp(-(z - y[i]) / scale) / scale * np.prod(1 - np.exp(-(z - others) / scale))
        direct.append(integrate.quad(density, y.max(), np.inf, epsabs=1e-13)[0])
    np.testing.assert_allclose(H.noisy_max_probabilities(scores, scale), direct, rtol=1e-7)
    t, w = H.gauss_legendre_01(528)
    assert abs(np.sum(w * t ** 1055) * 1056 - 1) < 1e-10


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tables(conn):
    # JIT compiling the wide aggregate queries below costs more than it saves
    conn.execute("SET jit = off")
    # t: groups 1..N_DLAP, each with i = 1..20 (and float columns derived from i)
    conn.execute(f"""
        CREATE TABLE t AS
        SELECT g, i, i::float8 AS x, i * 7.5::float8 AS y, (10 - i) * 30.25::float8 AS z
        FROM generate_series(1, {N_DLAP}) g, generate_series(1, {ROWS}) i""")
    conn.execute("ANALYZE t")
    return conn


# ---------------------------------------------------------------------------
# dp_count, dp_sum: discrete Laplace
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def count_draws(tables):
    cols = fetch_columns(tables, """
        SELECT g, dp_count(*), dp_count(i), dp_count(i, 0.5::float8), dp_count(x, 2.0::float8)
        FROM t GROUP BY g""", 4)
    return dict(zip(["dp_count(*)", "dp_count(i)", "dp_count(i, 0.5)", "dp_count(x, 2.0)"], cols))


@pytest.mark.parametrize("expr, epsilon", [
    ("dp_count(*)", 1.0), ("dp_count(i)", 1.0), ("dp_count(i, 0.5)", 0.5), ("dp_count(x, 2.0)", 2.0),
])
def test_count_is_discrete_laplace(count_draws, expr, epsilon):
    released = count_draws[expr]
    assert len(released) == N_DLAP
    assert np.all(released == np.round(released))
    noise = released - ROWS
    H.report(f"{expr} (b = {1 / epsilon})", H.dlap_gof_with_power(noise, 1.0 / epsilon))


def test_releases_are_independent(count_draws):
    """The method rests on independent noise per release: across aggregates of one
    group, and between consecutive releases (groups in the order they were finalised)."""
    a = np.clip(count_draws["dp_count(*)"] - ROWS, -2, 2)
    b = np.clip(count_draws["dp_count(i)"] - ROWS, -2, 2)
    edges = np.array([-np.inf, -1, 0, 1, 2])

    def independence_log10p(u, v):
        table = np.zeros((len(edges), len(edges)))
        np.add.at(table, (np.searchsorted(edges[1:], u, "right"), np.searchsorted(edges[1:], v, "right")), 1)
        return H.independence_g_test(table)

    same_group = independence_log10p(a, b)
    consecutive = independence_log10p(a[:-1], a[1:])
    identical = independence_log10p(a, a)  # what shared noise would look like
    print(f"\n[statistical] independence: same group log10 p = {same_group:.1f}, "
          f"consecutive releases log10 p = {consecutive:.1f}, identical noise log10 p = {identical:.1f}")
    assert same_group > H.LOG10_REJECT and consecutive > H.LOG10_REJECT
    assert identical < H.LOG10_POWER


SUM_INT_CASES = [
    # (SQL, lower, upper, epsilon)
    ("dp_sum(i, -5, 12, 0.5::float8)", -5, 12, 0.5),
    ("dp_sum(i, -5, 12, 2.0::float8)", -5, 12, 2.0),
    ("dp_sum(i::bigint, -30::bigint, 25::bigint)", -30, 25, 1.0),
]


@pytest.fixture(scope="module")
def sum_int_draws(tables):
    sql = "SELECT g, " + ", ".join(c[0] for c in SUM_INT_CASES) + " FROM t GROUP BY g"
    rows = tables.execute(sql).fetchall()
    assert all(isinstance(v, int) for v in rows[0][1:])  # bigint results
    return [np.array([r[k] for r in rows], dtype=float) for k in range(1, len(SUM_INT_CASES) + 1)]


@pytest.mark.parametrize("case", range(len(SUM_INT_CASES)))
def test_integer_sum_is_discrete_laplace(sum_int_draws, case):
    sql, lower, upper, epsilon = SUM_INT_CASES[case]
    true_sum = sum(min(max(i, lower), upper) for i in range(1, ROWS + 1))
    b = max(abs(lower), abs(upper)) / epsilon  # integer grid: 1
    H.report(f"{sql} (b = {b})", H.dlap_gof_with_power(sum_int_draws[case] - true_sum, b))


SUM_FLOAT_CASES = [
    # (SQL, column values as a function of i, lower, upper, epsilon)
    ("dp_sum(y, -50.0::float8, 100.0::float8)", lambda i: i * 7.5, -50.0, 100.0, 1.0),
    ("dp_sum(z, -250.5::float8, 10.0::float8, 0.25::float8)", lambda i: (10 - i) * 30.25, -250.5, 10.0, 0.25),
]


@pytest.fixture(scope="module")
def sum_float_draws(tables):
    sql = "SELECT g, " + ", ".join(c[0] for c in SUM_FLOAT_CASES) + " FROM t GROUP BY g"
    return fetch_columns(tables, sql, len(SUM_FLOAT_CASES))


@pytest.mark.parametrize("case", range(len(SUM_FLOAT_CASES)))
def test_float_sum_is_discrete_laplace_on_the_grid(sum_float_draws, case):
    sql, value, lower, upper, epsilon = SUM_FLOAT_CASES[case]
    gexp = grid_exponent(lower, upper)
    grid = math.ldexp(1.0, gexp)
    # the column values and bounds are exact multiples of the grid, so the sum is exact
    true_sum = sum(min(max(value(i), lower), upper) for i in range(1, ROWS + 1))
    units = (sum_float_draws[case] - true_sum) / grid  # exact: all terms are multiples of grid
    assert np.all(units == np.round(units))
    sensitivity_units = max(abs(round(lower / grid)), abs(round(upper / grid)))
    b = sensitivity_units / epsilon
    H.report(f"{sql} (b = {b * grid} = {b:.4g} grid units of 2^{gexp})", H.dlap_gof_with_power(units, b))


# ---------------------------------------------------------------------------
# dp_avg, dp_var, dp_stddev: against a simulated reference
# ---------------------------------------------------------------------------

def compare_with_simulation(name, released, simulate, post=lambda v: v, n_bins=40, ref_size=400_000):
    """Two-sample G test of SQL draws against samples simulated at scale x1, x0.7, x1.3.

    Bins are equal-probability bins of an independent pilot sample at the correct
    scale, so they depend neither on the SQL draws nor on the references.
    """
    rng = np.random.default_rng(20240601)
    edges = H.quantile_edges(post(simulate(rng, 200_000, 1.0)), n_bins)
    log10p = {}
    for factor in (1.0,) + H.WRONG_SCALES:
        reference = post(simulate(rng, ref_size, factor))
        log10p[factor] = H.two_sample_g_test(released, reference, edges)
    H.report(name, log10p)


VALUES = np.arange(1, ROWS + 1, dtype=float)  # the x column of every group


def test_avg_matches_mechanism(tables):
    (released,) = fetch_columns(tables, f"SELECT g, dp_avg(x, 0.0, 16.0) FROM t WHERE g <= {N_AVG} GROUP BY g", 1)
    assert len(released) == N_AVG and np.all((released >= 0) & (released <= 16))
    compare_with_simulation(
        "dp_avg(x, 0, 16), eps 1",
        released,
        lambda rng, size, f: H.simulate_avg(rng, VALUES, 0.0, 16.0, 1.0, size, factor=f),
    )


def test_var_matches_mechanism(tables):
    (released,) = fetch_columns(tables, f"SELECT g, dp_var(x, 0.0, 16.0) FROM t WHERE g <= {N_VAR} GROUP BY g", 1)
    assert len(released) == N_VAR and np.all((released >= 0) & (released <= 64))
    compare_with_simulation(
        "dp_var(x, 0, 16), eps 1",
        released,
        lambda rng, size, f: H.simulate_var(rng, VALUES, 0.0, 16.0, 1.0, size, factor=f),
    )


def test_stddev_matches_mechanism(tables):
    (released,) = fetch_columns(
        tables, f"SELECT g, dp_stddev(x, 0.0, 16.0, 2.0) FROM t WHERE g <= {N_VAR} GROUP BY g", 1)
    assert len(released) == N_VAR and np.all((released >= 0) & (released <= 8))
    compare_with_simulation(
        "dp_stddev(x, 0, 16, 2.0)",
        released,
        lambda rng, size, f: H.simulate_var(rng, VALUES, 0.0, 16.0, 2.0, size, factor=f),
        post=np.sqrt,
    )


# ---------------------------------------------------------------------------
# dp_median, dp_quantile: OpenDP noisy max over the 1025 candidates
# ---------------------------------------------------------------------------

# Candidate indices of the 12 rows of each group.  Scores take several levels
# with comparable selection mass, so the selection law is sensitive to the scale.
MEDIAN_ROWS = [500] * 4 + [505] * 2 + [520] * 2 + [560] * 2 + [700] * 2
QUANTILE_ROWS = [250, 251, 252, 254, 258, 266, 282, 314, 378, 506, 762, 1000]
QUANTILE_CASES = [
    # (name, SQL, candidate indices of the rows, q, lower, upper, epsilon)
    ("dp_median(xm, 0, 1024)", "dp_median(xm, 0, 1024)", MEDIAN_ROWS, 0.5, 0.0, 1024.0, 1.0),
    ("dp_quantile(xq, 0.25, -5, 5.24, 2.0)", "dp_quantile(xq, 0.25, -5.0, 5.24, 2.0)",
     QUANTILE_ROWS, 0.25, -5.0, 5.24, 2.0),
]


@pytest.fixture(scope="module")
def quantile_draws(tables):
    conn = tables
    assert len(MEDIAN_ROWS) == len(QUANTILE_ROWS)
    values = ", ".join(f"({k}, {m}, {q})" for k, (m, q) in enumerate(zip(MEDIAN_ROWS, QUANTILE_ROWS)))
    conn.execute(f"""
        CREATE TABLE tq AS
        SELECT g, (0 + v.m * 1.0)::float8 AS xm, (-5.0 + v.q * 0.01)::float8 AS xq
        FROM generate_series(1, {N_QUANTILE}) g, (VALUES {values}) v(k, m, q)""")
    conn.execute("ANALYZE tq")
    sql = "SELECT g, " + ", ".join(c[1] for c in QUANTILE_CASES) + " FROM tq GROUP BY g"
    cols = fetch_columns(conn, sql, len(QUANTILE_CASES))
    # the rows land on the intended candidates (same snapping as src/aggregates/hist_state.c)
    stored = conn.execute("SELECT xm, xq FROM tq WHERE g = 1").fetchall()
    for k, case in enumerate(QUANTILE_CASES):
        counts = H.candidate_counts([r[k] for r in stored], case[4], case[5])
        assert np.array_equal(counts, H.candidate_counts(case[2], 0, 1024))
    return cols


@pytest.mark.parametrize("case", range(len(QUANTILE_CASES)))
def test_quantile_selection_probabilities(quantile_draws, case):
    name, _, rows, q, lower, upper, epsilon = QUANTILE_CASES[case]
    released = quantile_draws[case]
    ncand = H.QUANTILE_CANDIDATES
    index = np.rint((released - lower) / (upper - lower) * (ncand - 1)).astype(int)
    # every release is exactly a candidate point
    assert np.all((index >= 0) & (index < ncand))
    assert np.allclose(released, lower + (upper - lower) * index / (ncand - 1), rtol=0, atol=1e-9)
    scores, sensitivity = H.quantile_scores(H.candidate_counts(rows, 0, ncand - 1), q)
    scale = 2.0 * sensitivity / epsilon  # OpenDP: epsilon = 2 * d_in / scale (non-monotonic L-inf)
    probs = H.noisy_max_probabilities(scores, scale)
    bins = H.index_bins(probs, len(index))
    log10p = {
        factor: H.index_gof(index, H.noisy_max_probabilities(scores, scale * factor), bins)
        for factor in (1.0,) + H.WRONG_SCALES
    }
    H.report(f"{name} (selection scale {scale:g}, {bins.max() + 1} bins)", log10p)


# ---------------------------------------------------------------------------
# Parallel (partial) aggregation and empty input
# ---------------------------------------------------------------------------

PARALLEL_SETTINGS = [
    "SET jit = off",
    "SET parallel_setup_cost = 0",
    "SET parallel_tuple_cost = 0",
    "SET min_parallel_table_scan_size = 0",
    "SET max_parallel_workers_per_gather = 2",
    "SET parallel_leader_participation = off",
]


def plan_nodes(conn, sql, analyze=False):
    """All nodes of the query's plan (EXPLAIN FORMAT JSON), depth first."""
    opts = "ANALYZE, FORMAT JSON" if analyze else "FORMAT JSON"
    doc = conn.execute(f"EXPLAIN ({opts}) {sql}").fetchone()[0]
    out, stack = [], [doc[0]["Plan"]]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.get("Plans", []))
    return out


def assert_partial_aggregation(conn, sql, groups=None):
    nodes = plan_nodes(conn, sql, analyze=True)
    modes = {n.get("Partial Mode") for n in nodes if n["Node Type"] == "Aggregate"}
    assert {"Partial", "Finalize"} <= modes, f"no partial aggregation: {modes}"
    gather = [n for n in nodes if n["Node Type"] in ("Gather", "Gather Merge")]
    assert gather and gather[0]["Workers Launched"] == 2, "parallel workers did not start"
    if groups is not None:
        # more partial states than groups: some groups' states came from both workers and were combined
        assert gather[0]["Actual Rows"] > groups


@pytest.fixture(scope="module")
def parallel_conn(pg, db):
    with pg.connect(db) as c:
        # rows ordered by i: each group's rows are spread over the whole table,
        # so both workers see part of every group and the states are combined
        for name, groups in (("tp", N_EMPTY), ("tpg", N_DLAP)):
            c.execute(f"""
                CREATE TABLE {name} AS
                SELECT g, i FROM generate_series(1, {ROWS}) i, generate_series(1, {groups}) g""")
            c.execute(f"ANALYZE {name}")
        for s in PARALLEL_SETTINGS:
            c.execute(s)
        yield c


def test_parallel_group_by_is_discrete_laplace(parallel_conn):
    sql = "SELECT g, dp_count(*), dp_sum(i, -5, 12) FROM tpg GROUP BY g"
    assert_partial_aggregation(parallel_conn, sql, groups=N_DLAP)
    counts, sums = fetch_columns(parallel_conn, sql, 2)
    assert len(counts) == N_DLAP
    H.report("parallel GROUP BY dp_count(*) (b = 1)", H.dlap_gof_with_power(counts - ROWS, 1.0))
    true_sum = sum(min(max(i, -5), 12) for i in range(1, ROWS + 1))
    H.report("parallel GROUP BY dp_sum(i, -5, 12) (b = 12)", H.dlap_gof_with_power(sums - true_sum, 12.0))


def test_parallel_empty_groups_are_noisy(parallel_conn):
    """Groups whose aggregate saw no row (FILTER): the final function gets a NULL state
    after partial aggregation and must still release noise, with the query's parameters."""
    sql = ("SELECT g, dp_count(*) FILTER (WHERE i < 0), dp_sum(i, -5, 12) FILTER (WHERE i < 0) "
           "FROM tp GROUP BY g")
    assert_partial_aggregation(parallel_conn, sql, groups=N_EMPTY)
    counts, sums = fetch_columns(parallel_conn, sql, 2)
    assert len(counts) == N_EMPTY
    assert counts.min() == 0 and counts.max() > 0  # noisy, clamped at 0
    H.report("parallel empty-group dp_count (max(0, DLap(1)))",
           H.dlap_gof_with_power(counts, 1.0, cdf_factory=H.clamped_dlap_cdf))
    H.report("parallel empty-group dp_sum(i, -5, 12) (DLap(12))", H.dlap_gof_with_power(sums, 12.0))


MAX_AGGS_PER_QUERY = 1600  # below PostgreSQL's 1664 target-list entries


def empty_counts(conn, table, where, check_plan):
    """N_EMPTY releases of dp_count over an empty input, MAX_AGGS_PER_QUERY distinct aggregates a query.

    dp_count(*) and dp_count(j, 1.0) with a different constant j per column:
    distinct aggregate calls (identical ones would be computed once), all
    counting rows with epsilon 1.
    """
    draws = []
    while len(draws) < N_EMPTY:
        k = min(MAX_AGGS_PER_QUERY, N_EMPTY - len(draws))
        aggs = ["dp_count(*)"] + [f"dp_count({j}, 1.0::float8)" for j in range(1, k)]
        sql = f"SELECT {', '.join(aggs)} FROM {table} WHERE {where}"
        if not draws:
            check_plan(sql)
        draws.extend(conn.execute(sql).fetchone())
    return np.array(draws, dtype=float)


def test_parallel_empty_input_is_noisy(parallel_conn):
    """Plain aggregate over an empty input (a WHERE the planner cannot fold) under partial aggregation."""
    def check_plan(sql):
        assert_partial_aggregation(parallel_conn, sql)

    counts = empty_counts(parallel_conn, "tp", "i + g < 0", check_plan)
    assert counts.min() == 0 and counts.max() > 0
    H.report("parallel empty input dp_count (max(0, DLap(1)))",
           H.dlap_gof_with_power(counts, 1.0, cdf_factory=H.clamped_dlap_cdf))


def test_where_false_in_parallel_worker_is_noisy(pg, db, tables):
    """WHERE false: the planner folds the scan away, so there is no partial step, but with
    force_parallel_mode / debug_parallel_query the whole aggregate, and so the
    release, runs in a parallel worker."""
    with pg.connect(db) as c:
        version = c.execute("SHOW server_version_num").fetchone()[0]
        guc = "debug_parallel_query" if int(version) >= 160000 else "force_parallel_mode"
        c.execute("SET jit = off")
        c.execute(f"SET {guc} = on")

        def check_plan(sql):
            nodes = plan_nodes(c, sql, analyze=True)
            gather = [n for n in nodes if n["Node Type"] == "Gather"]
            assert gather and gather[0].get("Single Copy") and gather[0]["Workers Launched"] == 1
            assert any(n["Node Type"] == "Aggregate" for n in nodes)

        counts = empty_counts(c, "t", "false", check_plan)
    assert counts.min() == 0 and counts.max() > 0
    H.report("WHERE false in a parallel worker dp_count (max(0, DLap(1)))",
           H.dlap_gof_with_power(counts, 1.0, cdf_factory=H.clamped_dlap_cdf))
