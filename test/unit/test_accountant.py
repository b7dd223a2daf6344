"""The accountant against OpenDP's own maps: rho_for, the (epsilon, delta) guarantee of a budget, charges.

Every reference value is computed here with OpenDP's measurements and combinators directly
(make_gaussian, make_laplace, make_composition, make_pureDP_to_zCDP, make_zCDP_to_approxDP), never
with pg_dp's code."""

from decimal import Decimal
import math

import opendp.prelude as dp
import pytest

from pg_dp.core.errors import DPError
from pg_dp.dp import accountant as acc

dp.enable_features("contrib")

DELTA = 1e-6


def opendp_epsilon(rhos, delta):
    """epsilon at delta of Gaussian releases of these rhos composed, by OpenDP alone."""
    parts = [dp.m.make_gaussian(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float),
                                scale=1 / math.sqrt(2 * r)) for r in rhos]
    composed = dp.c.make_composition(parts)
    return composed.map(1.0), dp.c.make_zCDP_to_approxDP(composed).map(1.0).epsilon(delta)


@pytest.mark.parametrize("epsilon,delta", [(0.1, 1e-6), (1.0, 1e-6), (1.0, 1e-9), (5.0, 1e-5), (0.01, 1e-7)])
def test_rho_for_is_the_largest_rho_whose_conversion_fits(epsilon, delta):
    rho = acc.rho_for(epsilon, delta)
    _, eps = opendp_epsilon([rho], delta)
    assert eps <= epsilon * (1 + 1e-12) and eps > epsilon * (1 - 1e-9)
    _, more = opendp_epsilon([rho * 1.001], delta)
    assert more > epsilon


def test_k_questions_cost_about_sqrt_k():
    rho = acc.question_rho(0.25, DELTA)
    spent, shown = acc.Spent(), (Decimal(0), Decimal(0))
    costs = []
    for _ in range(16):
        c = acc.charge(spent, shown, acc.Cost(rho=rho), (Decimal(100), Decimal(str(DELTA))))
        spent, shown = c.spent, (c.epsilon_total, c.delta_total)
        costs.append(c.epsilon)
    assert costs[0] == Decimal("0.25")                # the first question costs its epsilon exactly
    assert all(a > b for a, b in zip(costs, costs[1:]))     # later ones less and less
    total_rho, eps = opendp_epsilon([rho] * 16, DELTA)
    assert float(spent.rho) == pytest.approx(total_rho, rel=1e-12)
    assert float(shown[0]) == pytest.approx(eps, abs=2e-10) and shown[0] >= Decimal(repr(eps))
    assert 0.9 < float(shown[0]) < 1.1                 # ~ sqrt(16) x 0.25, not 4.0
    assert shown[1] == Decimal(str(DELTA))             # the conversion uses the budget's delta


def test_pure_epsilon_budgets_add_up_exactly():
    spent, shown = acc.Spent(), (Decimal(0), Decimal(0))
    for eps in ("0.1", "0.2", "0.3"):
        c = acc.charge(spent, shown, acc.Cost(epsilon=Decimal(eps)), (Decimal(1), Decimal(0)))
        spent, shown = c.spent, (c.epsilon_total, c.delta_total)
    assert shown == (Decimal("0.6"), Decimal(0))
    with pytest.raises(DPError) as e:
        acc.charge(spent, shown, acc.Cost(epsilon=Decimal("0.5")), (Decimal(1), Decimal(0)))
    assert e.value.sqlstate == "53400"
    with pytest.raises(DPError) as e:                  # Gaussian noise needs a delta
        acc.charge(spent, shown, acc.Cost(rho=0.01), (Decimal(1), Decimal(0)))
    assert e.value.sqlstate == "53400"


def test_approximate_parts_compose_basically_with_the_conversion():
    """Laplace thresholding (epsilon, delta) plus Gaussian rho: epsilon adds to the conversion of rho at
    the delta that is left -- basic composition of two (epsilon, delta) guarantees."""
    rho = acc.question_rho(0.5, 1e-5)
    c = acc.charge(acc.Spent(), (Decimal(0), Decimal(0)), acc.Cost(rho=rho, epsilon=0.2, delta=Decimal("1e-6")),
                   (Decimal(10), Decimal("1e-5")))
    _, eps = opendp_epsilon([rho], 1e-5 - 1e-6)
    assert float(c.epsilon_total) == pytest.approx(0.2 + eps, abs=2e-10)
    assert c.delta_total == Decimal("1e-5")
    # a budget whose delta is used up by approximate parts cannot convert rho any more
    with pytest.raises(DPError):
        acc.charge(acc.Spent(), (Decimal(0), Decimal(0)), acc.Cost(rho=rho, epsilon=0.1, delta=Decimal("1e-5")),
                   (Decimal(10), Decimal("1e-5")))


def test_pure_dp_releases_in_zcdp_as_opendp_casts_them():
    """A Laplace release of epsilon is (epsilon^2 / 2)-zCDP (make_pureDP_to_zCDP): the accountant's
    conversion of that rho is OpenDP's."""
    lap = dp.m.make_laplace(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=10.0)
    rho = dp.c.make_pureDP_to_zCDP(lap).map(1.0)
    assert rho == pytest.approx(0.1 ** 2 / 2)
    assert acc.epsilon_of(rho, DELTA) == pytest.approx(opendp_epsilon([rho], DELTA)[1], rel=1e-12)


def test_dp_cost_prices_without_refusing():
    c = acc.charge(acc.Spent(), (Decimal(0), Decimal(0)), acc.Cost(rho=acc.question_rho(3.0, DELTA)),
                   (Decimal(1), Decimal(str(DELTA))), check=False)
    assert c.epsilon == Decimal(3)
