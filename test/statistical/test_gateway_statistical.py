"""Statistical tests of the gateway: dp.query releases the noise it advertises.

Each test asks the gateway, as an analyst without SELECT on the table, the
same question many times with a different statement text (`WHERE id > -1`,
`WHERE id > -2`, ...: every row still qualifies, but the answer cache does
not recognise the statement), so every answer carries fresh noise.  A
statement with M `count(*)` aggregates splits its epsilon evenly, and every
aggregate of every released key is a separate release, so one statement
gives M draws per key.

Reference distributions are written down from the mechanisms' definitions
(stats_helpers), never by calling pg_dp code:

* count over a public key set: released - true ~ discrete Laplace of scale
  b = rows_per_unit * groups_per_unit / eps_agg (row-level: 1 / eps_agg), with
  eps_agg = statement epsilon / M; every public key is released, and a key
  with no (bounded) row releases max(0, DLap(b)) (counts are clamped at 0).
* contribution bounding: each unit keeps at most max_rows_per_unit rows per
  group and only its max_groups_per_unit first groups (in key order), so the
  true count is the count of the bounded rows.
* DP partition selection (keys with no public values): a key with n rows is
  released when n + Z >= T, Z ~ discrete Laplace(1 / eps_sel) (OpenDP
  make_laplace_threshold, keep "counts not less than the threshold"), T the
  threshold dp.explain advertises; a kept key's count comes from the count
  aggregate, with its own noise.

Each G test accepts the correct scale (log10 p > -12: a correct gateway fails
with probability 1e-12) and rejects the very same test at noise scale x0.7 and
x1.3 far beyond that (log10 p < -20).  Draw counts come from simulations of
the tests themselves (150 runs each): the weakest, x1.3 on 12 000 clamped draws
(empty keys), reaches log10 p = -61 +- 7 on average (worst run -44), 5.7
standard deviations below -20; discrete Laplace tests on 12 000 draws reach
-150 +- 10 at x1.3.  So the power checks do not flake either.

Run with -s to see the p-values.  About 40-70 s on 2 shared cores: 1 600 gateway queries at
a few ms each through the executor (see bench/RESULTS.md).
"""

import math
import re
from decimal import Decimal

import numpy as np
import psycopg
import pytest
from scipy import stats

import stats_helpers as H

pytestmark = [pytest.mark.statistical]

ROLE = "gstat_analyst"
AGGS = 10                      # count(*) aggregates per statement
EPS_STATEMENT = 5.0            # -> eps_agg 0.5 per count

# (a) row-level, public keys 1..8 on a nullable column: 9 released keys
PUB_ROWS = {g: 100 * g for g in range(1, 8)}     # key 8 and NULL: no row
N_PUB = 600                    # statements -> 42 000 non-empty and 12 000 empty draws

# (b) privacy unit: every unit has 5 rows in each of 3 groups
UNITS = 1200
ROWS_PER_GROUP = 5
MAX_ROWS, MAX_GROUPS = 3, 2
N_UNIT = 400                   # statements -> 20 000 non-empty and 12 000 empty draws

# (c) partition selection
N_SEL = 600                    # statements
BIG_ROWS = 1000
MID_KEYS = 20                  # keys per offset from the threshold T
MID_OFFSETS = (-3, 2)          # keys with T - 3 rows (kept w.p. 0.14) and T + 2 rows (0.86)
EPS_SEL_STATEMENT = 5.5        # 10 counts + selection: 11 shares of 0.5
DELTA = 1e-6                   # pg_dp's default_delta


def eps_agg(statement_eps, shares):
    return statement_eps / shares


def count_list(prefix="c"):
    return ", ".join(f"count(*) AS {prefix}{j}" for j in range(AGGS))


def column_defs(key_type):
    return f"k {key_type}, " + ", ".join(f"c{j} bigint" for j in range(AGGS))


def draw(analyst, template, epsilon, n, key_type):
    """n answers of `template` (with {i} in a WHERE id > -{i} that keeps every row): key -> array (n, AGGS)."""
    out = {}
    query = f"SELECT * FROM dp.query(%s, %s) AS r({column_defs(key_type)})"
    for i in range(1, n + 1):
        for r in analyst.execute(query, [template.format(i=i), Decimal(repr(epsilon))]).fetchall():
            out.setdefault(r[0], []).append(r[1:])
    return {k: np.array(v, dtype=float) for k, v in out.items()}


# ---------------------------------------------------------------------------
# Fixtures: tables (as the DBA), one analyst session
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def analyst(pg, db, conn):
    conn.execute("SET jit = off")
    conn.execute(f"DROP ROLE IF EXISTS {ROLE}")
    conn.execute(f"CREATE ROLE {ROLE} LOGIN")

    # (a) row-level table, public keys 1..8, keys 1..7 with 100 * g rows
    conn.execute("CREATE TABLE gs_pub (id int NOT NULL, g int)")
    conn.execute("INSERT INTO gs_pub SELECT row_number() OVER (), g "
                 "FROM generate_series(1, 7) g, generate_series(1, 100 * g) i")
    conn.execute("SELECT dp.protect('gs_pub')")
    conn.execute("SELECT dp.set_public_values('gs_pub', 'g', ARRAY['1','2','3','4','5','6','7','8'])")

    # (b) unit p has ROWS_PER_GROUP rows in each of the groups 1 + (p + j) % 6, j = 0, 1, 2
    conn.execute("CREATE TABLE gs_unit (id int NOT NULL, pid int NOT NULL, g int NOT NULL)")
    conn.execute(f"""INSERT INTO gs_unit SELECT row_number() OVER (), p, 1 + (p + j) % 6
                     FROM generate_series(1, {UNITS}) p, generate_series(0, 2) j,
                          generate_series(1, {ROWS_PER_GROUP}) r""")
    conn.execute(f"SELECT dp.protect('gs_unit', privacy_unit => 'pid', max_rows_per_unit => {MAX_ROWS}, "
                 f"max_groups_per_unit => {MAX_GROUPS})")
    conn.execute("SELECT dp.set_public_values('gs_unit', 'g', ARRAY['1','2','3','4','5','6','7','8'])")

    # (c) keys without public values: filled in by the selection fixture once T is known
    conn.execute("CREATE TABLE gs_sel (id int NOT NULL, k text NOT NULL)")
    conn.execute("SELECT dp.protect('gs_sel')")

    for t in ("gs_pub", "gs_unit", "gs_sel"):
        conn.execute(f"ANALYZE {t}")
        conn.execute(f"SELECT dp.grant_budget('{ROLE}', '{t}', 1000000, 0.5)")

    with pg.connect(db, user=ROLE) as c:
        c.execute("SET jit = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT count(*) FROM gs_pub")
        yield c
    conn.execute(f"DROP OWNED BY {ROLE}")
    conn.execute(f"DROP ROLE {ROLE}")


def explain(analyst, sql, eps):
    """(column_name, noise_scale, note) of every output column, as dp.explain advertises them."""
    return analyst.execute("SELECT column_name, noise_scale, note FROM dp.explain(%s, %s)",
                           [sql, Decimal(repr(eps))]).fetchall()


# ---------------------------------------------------------------------------
# (a) row-level GROUP BY over a public key set, empty keys included
# ---------------------------------------------------------------------------

PUB_SQL = f"SELECT g, {count_list()} FROM gs_pub WHERE id > -{{i}} GROUP BY g"


@pytest.fixture(scope="module")
def pub_draws(analyst, conn):
    spent0 = conn.execute("SELECT epsilon_spent FROM dp.budgets WHERE role = %s::regrole AND dataset = 'gs_pub'",
                          [ROLE]).fetchone()[0]
    draws = draw(analyst, PUB_SQL, EPS_STATEMENT, N_PUB, "int")
    spent1 = conn.execute("SELECT epsilon_spent FROM dp.budgets WHERE role = %s::regrole AND dataset = 'gs_pub'",
                          [ROLE]).fetchone()[0]
    # every statement was new (no cache hit) and charged exactly its epsilon
    assert spent1 - spent0 == N_PUB * Decimal(repr(EPS_STATEMENT))
    return draws


def test_public_keys_all_released_and_advertised_scale(analyst, pub_draws):
    assert set(pub_draws) == set(range(1, 9)) | {None}
    assert all(v.shape == (N_PUB, AGGS) for v in pub_draws.values())
    b = 1.0 / eps_agg(EPS_STATEMENT, AGGS)
    rows = explain(analyst, PUB_SQL.format(i=1), EPS_STATEMENT)
    scales = [r[1] for r in rows if r[0].startswith("c")]
    assert len(scales) == AGGS and all(math.isclose(s, b, rel_tol=1e-12) for s in scales)


def test_public_key_counts_are_discrete_laplace(pub_draws):
    b = 1.0 / eps_agg(EPS_STATEMENT, AGGS)
    noise = np.concatenate([pub_draws[g].ravel() - n for g, n in PUB_ROWS.items()])
    assert np.all(noise == np.round(noise))
    H.report(f"gateway public keys, {len(noise)} counts of keys with rows (b = {b:g})",
           H.dlap_gof_with_power(noise, b))


def test_empty_public_keys_are_clamped_discrete_laplace(pub_draws):
    """Key 8 (no row) and NULL (nullable column, no row) are released with noise, clamped at 0."""
    b = 1.0 / eps_agg(EPS_STATEMENT, AGGS)
    released = np.concatenate([pub_draws[8].ravel(), pub_draws[None].ravel()])
    assert released.min() == 0 and released.max() > 0
    H.report(f"gateway empty public keys, {len(released)} counts (max(0, DLap({b:g})))",
           H.dlap_gof_with_power(released, b, cdf_factory=H.clamped_dlap_cdf))


def test_gateway_releases_are_independent(pub_draws):
    """Aggregates of one key in one statement, and one key in consecutive statements, have independent noise."""
    noise = pub_draws[7] - PUB_ROWS[7]
    edges = np.array([-np.inf, -2, -1, 0, 1, 2, 3])

    def independence_log10p(u, v):
        iu = np.searchsorted(edges[1:], u, "right")
        iv = np.searchsorted(edges[1:], v, "right")
        table = np.zeros((len(edges), len(edges)))
        np.add.at(table, (iu, iv), 1)
        return H.independence_g_test(table)

    same_statement = independence_log10p(noise[:, 0], noise[:, 1])
    consecutive = independence_log10p(noise[:-1, 0], noise[1:, 0])
    identical = independence_log10p(noise[:, 0], noise[:, 0])
    print(f"\n[statistical] gateway independence: same statement log10 p = {same_statement:.1f}, "
          f"consecutive statements log10 p = {consecutive:.1f}, identical noise log10 p = {identical:.1f}")
    assert same_statement > H.LOG10_REJECT and consecutive > H.LOG10_REJECT
    assert identical < H.LOG10_POWER


# ---------------------------------------------------------------------------
# (b) a privacy unit with contribution bounding
# ---------------------------------------------------------------------------

UNIT_SQL = f"SELECT g, {count_list()} FROM gs_unit WHERE id > -{{i}} GROUP BY g"


def bounded_counts():
    """True counts after bounding: each unit keeps min(5, MAX_ROWS) rows in its MAX_GROUPS smallest groups."""
    counts = {g: 0 for g in range(1, 9)}
    for p in range(1, UNITS + 1):
        groups = sorted({1 + (p + j) % 6 for j in range(3)})
        for g in groups[:MAX_GROUPS]:
            counts[g] += min(ROWS_PER_GROUP, MAX_ROWS)
    return counts


@pytest.fixture(scope="module")
def unit_draws(analyst):
    return draw(analyst, UNIT_SQL, EPS_STATEMENT, N_UNIT, "int")


def test_unit_advertised_scale(analyst, unit_draws):
    assert set(unit_draws) == set(range(1, 9))
    b = MAX_ROWS * MAX_GROUPS / eps_agg(EPS_STATEMENT, AGGS)
    rows = explain(analyst, UNIT_SQL.format(i=1), EPS_STATEMENT)
    scales = [r[1] for r in rows if r[0].startswith("c")]
    assert len(scales) == AGGS and all(math.isclose(s, b, rel_tol=1e-12) for s in scales)


def test_unit_bounded_counts_are_discrete_laplace(unit_draws):
    """Released - bounded true count ~ DLap(rows_per_unit * groups_per_unit / eps_agg)."""
    truth = bounded_counts()
    assert truth[6] == 0 and truth[7] == 0 and min(truth[g] for g in range(1, 6)) >= 1000
    b = MAX_ROWS * MAX_GROUPS / eps_agg(EPS_STATEMENT, AGGS)
    noise = np.concatenate([unit_draws[g].ravel() - truth[g] for g in range(1, 6)])
    # without bounding the counts would be 5/3 to 5/2 times larger: far outside the noise
    H.report(f"gateway privacy unit (k={MAX_ROWS}, g={MAX_GROUPS}), {len(noise)} counts (b = {b:g})",
           H.dlap_gof_with_power(noise, b))


def test_unit_empty_after_bounding_is_clamped_discrete_laplace(unit_draws):
    """Group 6 has rows, but every unit in it reaches it third: after bounding it is empty, like 7 and 8."""
    b = MAX_ROWS * MAX_GROUPS / eps_agg(EPS_STATEMENT, AGGS)
    released = np.concatenate([unit_draws[g].ravel() for g in (6, 7, 8)])
    H.report(f"gateway privacy unit, keys empty after bounding, {len(released)} counts (max(0, DLap({b:g})))",
           H.dlap_gof_with_power(released, b, cdf_factory=H.clamped_dlap_cdf))


# ---------------------------------------------------------------------------
# (c) DP partition selection (keys without public values)
# ---------------------------------------------------------------------------

SEL_SQL = f"SELECT k, {count_list()} FROM gs_sel WHERE id > -{{i}} GROUP BY k"
SEL_SHARES = AGGS + 1          # each count and the selection get an equal share


def dlap_tail(j, b):
    """P(Z >= j), Z ~ discrete Laplace(b), j an integer: p^j / (1 + p) for j >= 1, p = exp(-1/b)."""
    p = math.exp(-1.0 / b)
    return p ** j / (1 + p) if j >= 1 else 1.0 - p ** (1 - j) / (1 + p)


@pytest.fixture(scope="module")
def selection(analyst, conn):
    rows = explain(analyst, SEL_SQL.format(i=1), EPS_SEL_STATEMENT)
    notes = [r[2] for r in rows if r[0] == "k"]
    m = re.search(r"fewer than about (\d+) contributing units", notes[0])
    assert m, notes
    threshold = int(m.group(1))
    assert threshold + min(MID_OFFSETS) >= 2
    mids = " ".join(
        f"UNION ALL SELECT 'mid{off:+d}_' || m FROM generate_series(1, {MID_KEYS}) m,"
        f" generate_series(1, {threshold + off})" for off in MID_OFFSETS)
    conn.execute("INSERT INTO gs_sel (id, k) SELECT row_number() OVER (), k FROM ("
                 f"SELECT 'big' AS k FROM generate_series(1, {BIG_ROWS}) UNION ALL SELECT 'one' {mids}) s")
    conn.execute("ANALYZE gs_sel")
    draws = draw(analyst, SEL_SQL, EPS_SEL_STATEMENT, N_SEL, "text")
    return threshold, draws


def test_selection_keeps_big_key_with_count_noise(selection):
    _, draws = selection
    b = 1.0 / eps_agg(EPS_SEL_STATEMENT, SEL_SHARES)
    big = draws.get("big")
    assert big is not None and big.shape == (N_SEL, AGGS), "the 1000-row key was not released every time"
    H.report(f"gateway partition selection, count noise of the kept key, {big.size} counts (b = {b:g})",
           H.dlap_gof_with_power(big.ravel() - BIG_ROWS, b))


def test_selection_release_rate_near_threshold(selection):
    """A key with n rows is kept with probability P(n + DLap(1/eps_sel) >= T), on both sides of T.

    Every (key, statement) is one trial; the two offsets are two binomials,
    tested together (their G statistics add up).
    """
    threshold, draws = selection
    b_sel = 1.0 / eps_agg(EPS_SEL_STATEMENT, SEL_SHARES)
    trials = MID_KEYS * N_SEL
    observed, kept = [], {}
    for off in MID_OFFSETS:
        kept[off] = sum(len(v) for k, v in draws.items() if k.startswith(f"mid{off:+d}_"))
        observed += [kept[off], trials - kept[off]]
    log10p = {}
    for factor in (1.0,) + H.WRONG_SCALES:
        probs = []
        for off in MID_OFFSETS:
            p = dlap_tail(-off, b_sel * factor)      # n + Z >= T  <=>  Z >= T - n = -off
            probs += [p, 1 - p]
        log10p[factor] = H.g_test(observed, probs)   # equal trials per offset: expected = trials * p
    detail = ", ".join(f"T{off:+d} rows: kept {kept[off]} of {trials} (expected {trials * dlap_tail(-off, b_sel):.0f})"
                       for off in MID_OFFSETS)
    H.report(f"gateway partition selection, T = {threshold}, b = {b_sel:g}: {detail}", log10p)


def test_selection_one_row_key_almost_never_released(selection):
    """A one-row key is kept with probability P(DLap >= T - 1): tiny; allow what a 1e-12 binomial tail allows."""
    threshold, draws = selection
    b_sel = 1.0 / eps_agg(EPS_SEL_STATEMENT, SEL_SHARES)
    p_one = dlap_tail(threshold - 1, b_sel)
    allowed = int(stats.binom.isf(1e-12, N_SEL, p_one))
    released = len(draws.get("one", []))
    print(f"\n[statistical] one-row key released {released} times in {N_SEL} statements "
          f"(P = {p_one:.3g} each, at most {allowed} allowed)")
    assert released <= allowed


def test_selection_delta_is_within_the_charged_delta(selection, analyst):
    """The delta charged for selection bounds the probability that a one-unit key is released."""
    threshold, _ = selection
    b_sel = 1.0 / eps_agg(EPS_SEL_STATEMENT, SEL_SHARES)
    p_one = dlap_tail(threshold - 1, b_sel)      # the key's count is 1: kept iff 1 + Z >= T
    charged = analyst.execute("SELECT delta FROM dp.ledger WHERE dataset = 'gs_sel' ORDER BY id LIMIT 1").fetchone()[0]
    assert float(charged) == DELTA
    print(f"\n[statistical] partition selection: T = {threshold}, b = {b_sel:g}, "
          f"P(one-row key kept) = {p_one:.4g}, charged delta = {DELTA:g}")
    assert p_one <= DELTA
