"""Values on a grid (pg_dp.synth.grid, domain.Column.step): candidates, the choice from a
noisy histogram, codes and decoding on the grid, and what the detection costs."""

from types import SimpleNamespace

import numpy as np
import pytest

from pg_dp.dp import mechanisms
from pg_dp.synth import budget, grid
from pg_dp.synth import domain as dom


def salary(**kw):
    return dom.Column("salary", "integer", "integer", False, "numeric", lower=10000, upper=200000,
                      source="declared bounds", **kw)


def test_candidates_are_public_round_steps_coarser_than_the_type():
    steps = grid.candidates(salary())
    assert steps[0] == 50000 and 5000 in steps and 2500 in steps and 2 in steps
    assert 1 not in steps and 2.5 not in steps                   # integers: whole steps past 1
    assert grid.candidates(dom.Column("p", "numeric(10,2)", "numeric", False, "numeric", lower=0, upper=10))[-1] == 0.02
    assert grid.candidates(dom.Column("d", "real", "float", False, "numeric", lower=0, upper=0.2))[-1] == 1e-6
    assert grid.candidates(salary(step=5000.0)) == []            # declared: nothing to find
    assert grid.candidates(dom.Column("age", "integer", "integer", False, "numeric", lower=0, upper=90)) == []


def test_the_largest_step_most_rows_sit_on_is_chosen():
    steps = grid.candidates(salary())
    cells = np.zeros(len(steps) + 1)
    cells[steps.index(10000)] = 5000          # multiples of 10,000
    cells[steps.index(5000)] = 4990           # of 5,000 only
    cells[-1] = 10                            # off every grid
    assert grid.choose(cells, steps) == 5000
    cells[-1] = 500                           # 5% off the grid: no grid
    assert grid.choose(cells, steps) is None
    cells[-1] = 0
    cells[steps.index(5000)] = 0              # every value a multiple of 10,000
    assert grid.choose(cells, steps) == 10000


def test_a_column_on_a_grid_gets_a_code_per_grid_point_and_decodes_on_it():
    c = salary()
    c.set_step(5000)
    assert c.exact and c.value_codes == 39 and (c.lower, c.upper) == (10000, 200000)
    got = c.decode(np.arange(39), np.random.default_rng(0))
    assert got.tolist() == [10000 + 5000 * k for k in range(39)]
    wide = dom.Column("amount", "numeric(10,2)", "numeric", False, "numeric", lower=0, upper=100000,
                      source="declared bounds")
    wide.set_step(50)                          # 2,001 points: binned, decoded on the grid
    assert not wide.exact
    values = wide.decode(np.random.default_rng(1).integers(0, wide.value_codes, 1000), np.random.default_rng(2))
    assert np.all(np.mod(values, 50) == 0) and values.min() >= 0 and values.max() <= 100000
    off = dom.Column("b", "integer", "integer", False, "numeric", lower=12, upper=97, source="declared bounds")
    off.set_step(10)
    assert (off.lower, off.upper) == (10, 100)  # the bounds move out to the grid


def test_grid_detection_costs_its_share_of_the_models_rho(monkeypatch):
    """The grid histograms are Gaussian (zCDP, L2 sensitivity = the rows one unit moves): their
    rho, from OpenDP's maps, adds up to GRID_RHO_SHARE of the model's rho, split over the tested
    columns."""
    cols = [salary(), dom.Column("bonus", "integer", "integer", False, "numeric", lower=0, upper=9000,
                                 source="declared bounds")]
    t = SimpleNamespace(columns=cols, keys=[])
    st = SimpleNamespace(t=t, src="x", sensitivity=3, phase=lambda m: None)
    monkeypatch.setattr(grid.db, "quote_ident", lambda n: f'"{n}"')
    monkeypatch.setattr(grid.db, "execute", lambda sql, *a, **k: [{"g": 1, "n": 40000}, {"g": 5, "n": 100}])
    spent = []
    noisy = mechanisms.gaussian_counts
    monkeypatch.setattr(mechanisms, "gaussian_counts", lambda counts, scale: spent.append(
        mechanisms._integer_gaussian(scale).map(3)) or noisy(counts, scale))
    rho = budget.grid_rho(st, 1.0, 1e-6)
    assert rho == pytest.approx(budget.GRID_RHO_SHARE * mechanisms.rho_for(1.0, 1e-6))
    found = grid.detect(st, rho)
    assert len(spent) == 2 and sum(spent) == pytest.approx(rho, rel=1e-6) and sum(spent) <= rho * (1 + 1e-9)
    assert set(found) <= {"salary", "bonus"}
