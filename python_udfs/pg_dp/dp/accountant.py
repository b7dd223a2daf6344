"""The privacy accountant: what a release costs and what a budget has spent, in OpenDP's terms.

Budgets are granted and shown in (epsilon, delta).  Underneath, every release is a Cost:

  rho              zero-concentrated DP (Gaussian noise on counts and sums, the zCDP exponential
                   mechanism); composes by addition, so k releases of rho cost k * rho, whose
                   (epsilon, delta) conversion grows like sqrt(k);
  epsilon, delta   approximate DP composed by addition (Laplace noise, Laplace thresholding of
                   DP partition selection, synthesis's discovery steps).

A budget's spend is the sum of its Costs, and its guarantee is

  delta_granted = 0:  (epsilon part, 0) -- pure epsilon-DP, Laplace noise only (rho must stay 0);
  delta_granted > 0:  (epsilon part + OpenDP's zCDP -> (epsilon, delta) conversion of the rho part at
                      delta_granted - delta part, delta_granted) -- basic composition of the two.

That pair is what the ledger shows as spent (epsilon_spent rounded up to 1e-10), and a charge is
refused when its epsilon would exceed what was granted.  A question asked at epsilon gets the rho
whose conversion alone is that epsilon at the role's delta (rho_for), so the first question of a
budget costs exactly its epsilon and later ones less.

OpenDP computes every conversion (make_zCDP_to_approxDP on a Gaussian measurement of exactly the
rho in question), nothing here re-derives a formula.  This module runs no SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from functools import lru_cache
import math

from ..core.errors import DPError
from .mechanisms import dp

QUANTUM = Decimal("1e-10")          # epsilon_spent is rounded up to this
INSUFFICIENT = "53400"


@dataclass(frozen=True)
class Cost:
    """What one release (or a sum of releases) costs: a zCDP part and an approximate-DP part
    (floats, or exact Decimals where the question states them: a pure-epsilon charge is as asked)."""
    rho: float = 0.0
    epsilon: float | Decimal = 0.0
    delta: float | Decimal = 0.0

    def __add__(self, other: "Cost") -> "Cost":
        def add(a, b):
            return _dec(a) + _dec(b) if isinstance(a, Decimal) or isinstance(b, Decimal) else a + b
        return Cost(self.rho + other.rho, add(self.epsilon, other.epsilon), add(self.delta, other.delta))

    @property
    def zero(self) -> bool:
        return self.rho == 0 and self.epsilon == 0 and self.delta == 0


@dataclass(frozen=True)
class Spent:
    """A budget's state: the sum of its Costs (exact decimals as stored in dp_internal.budgets)."""
    rho: Decimal = Decimal(0)
    epsilon: Decimal = Decimal(0)       # the approximate-DP part (pure epsilon on delta-0 budgets)
    delta: Decimal = Decimal(0)

    def plus(self, cost: Cost) -> "Spent":
        return Spent(self.rho + _dec(cost.rho), self.epsilon + _dec(cost.epsilon), self.delta + _dec(cost.delta))


def _dec(x) -> Decimal:
    return x if isinstance(x, Decimal) else Decimal(repr(float(x)))


@lru_cache(maxsize=4096)
def _gaussian(scale: float):
    return dp.m.make_gaussian(dp.atom_domain(T="i64"), dp.absolute_distance(T="i64"), scale=scale)


def _gaussian_with_rho(rho: float):
    """A discrete Gaussian measurement (sensitivity 1) whose OpenDP map gives at least rho."""
    scale = 1.0 / math.sqrt(2.0 * rho)
    for _ in range(64):
        m = _gaussian(scale)
        if m.map(1) >= rho:
            return m
        scale = math.nextafter(scale, 0.0)
    raise AssertionError("could not match rho")  # pragma: no cover


@lru_cache(maxsize=4096)
def epsilon_of(rho: float, delta: float) -> float:
    """The epsilon of rho-zCDP at delta, by OpenDP's conversion (an upper bound: rounded up)."""
    if rho <= 0:
        return 0.0
    if not (0 < delta < 1):
        raise DPError("a zCDP release needs a delta between 0 and 1", sqlstate="22023")
    profile = dp.c.make_zCDP_to_approxDP(_gaussian_with_rho(float(rho))).map(1)
    return float(profile.epsilon(float(delta)))


@lru_cache(maxsize=1024)
def rho_for(epsilon: float, delta: float) -> float:
    """The largest rho whose conversion at delta is at most epsilon (to about 1e-14 relative)."""
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise DPError("epsilon must be a finite number greater than zero",
                      hint="Pass the privacy loss you accept for this release, e.g. 0.1 or 1.0.", sqlstate="22023")
    if not (0 < delta < 1):
        raise DPError("delta must be between 0 and 1 for zCDP",
                      hint="Gaussian noise needs a small delta such as 1e-6.", sqlstate="22023")
    low, high = 0.0, epsilon       # epsilon_of(rho) >= rho, so rho <= epsilon
    if epsilon_of(high, delta) <= epsilon:
        return high
    for _ in range(200):
        mid = (low + high) / 2
        if mid in (low, high):
            break
        if epsilon_of(mid, delta) <= epsilon:
            low = mid
        else:
            high = mid
        if high - low <= high * 1e-14:
            break
    if low <= 0:
        raise DPError("epsilon is too small for this delta", hint="Use a larger epsilon or delta.", sqlstate="22023")
    return low


def epsilon_for_rho(rho: float, delta: float) -> float:
    """The epsilon a question is asked at so that it gets this rho (inverse of rho_for)."""
    return epsilon_of(rho, delta)


def guarantee(spent: Spent, delta_granted: Decimal) -> tuple[Decimal, Decimal]:
    """(epsilon, delta) of everything a budget has spent, epsilon rounded up to QUANTUM."""
    delta_granted = Decimal(delta_granted)
    if spent.rho <= 0:
        return _up(spent.epsilon), spent.delta
    conversion_delta = float(delta_granted - spent.delta)
    if delta_granted <= 0 or conversion_delta <= 0:
        raise DPError("this budget has no delta left for zCDP releases",
                      hint="Ask an administrator for more delta (dp.grant_budget(role, dataset, 0, 1e-6)).",
                      sqlstate=INSUFFICIENT)
    return _up(Decimal(repr(epsilon_of(float(spent.rho), conversion_delta))) + spent.epsilon), delta_granted


def _up(x: Decimal) -> Decimal:
    """x rounded up to QUANTUM, without trailing zeros (1.5, not 1.5000000000)."""
    if not x:
        return Decimal(0)
    up = x.quantize(QUANTUM, rounding=ROUND_CEILING) if x.as_tuple().exponent < QUANTUM.as_tuple().exponent else x
    return _plain(up)


def _plain(x: Decimal) -> Decimal:
    """A decimal without trailing zeros or exponent (numeric shows it as written)."""
    x = x.normalize()
    return x.quantize(Decimal(1)) if x.as_tuple().exponent > 0 else x


def uses_zcdp(delta_granted) -> bool:
    """Budgets granted with delta > 0 account in zCDP (Gaussian noise); delta = 0 keeps pure epsilon."""
    return delta_granted is not None and Decimal(delta_granted) > 0


def question_rho(epsilon: float, delta_granted) -> float:
    """The rho of a question asked at epsilon on a budget of delta_granted: its conversion is epsilon."""
    return rho_for(float(epsilon), float(delta_granted))


@dataclass(frozen=True)
class Charge:
    """A charge as the ledger writes it: the new totals and the increments."""
    spent: Spent                 # the state after
    epsilon_total: Decimal       # the guarantee after
    delta_total: Decimal
    epsilon: Decimal             # what this release adds to epsilon_spent
    delta: Decimal               # and to delta_spent


def charge(before: Spent, shown_before: tuple[Decimal, Decimal], cost: Cost,
           granted: tuple[Decimal, Decimal], check: bool = True) -> Charge:
    """The charge of `cost` on a budget (granted epsilon, delta) that has spent `before` (shown as
    shown_before); refused (53400) when it does not fit (check=False: priced anyway, for dp.cost).
    The epsilon shown never goes down."""
    epsilon_granted, delta_granted = (Decimal(g) for g in granted)
    if cost.rho > 0 and not uses_zcdp(delta_granted):
        if not check:
            return Charge(before, *shown_before, Decimal("Infinity"), Decimal(0))
        raise DPError("insufficient budget: this release adds Gaussian noise (zCDP), which needs a delta, and "
                      "this budget has none", hint="Ask an administrator for a delta: dp.grant_budget(role, "
                      "dataset, 0, 1e-6).", sqlstate=INSUFFICIENT)
    after = before.plus(cost)
    if not check:
        try:
            eps_after, delta_after = guarantee(after, delta_granted)
        except DPError:
            return Charge(after, *shown_before, Decimal("Infinity"), Decimal(0))
        eps_after = max(eps_after, Decimal(shown_before[0]))
        delta_after = max(delta_after, Decimal(shown_before[1]))
        return Charge(after, eps_after, delta_after, _plain(eps_after - Decimal(shown_before[0])),
                      _plain(delta_after - Decimal(shown_before[1])))
    if after.delta > delta_granted or (after.rho > 0 and after.delta >= delta_granted):
        raise DPError(f"insufficient budget: this query needs delta {_dec(cost.delta)}; remaining delta "
                      f"{max(Decimal(0), delta_granted - before.delta)}",
                      hint="See dp.my_budget() and dp.cost(query); ask an administrator for more budget "
                           "or ask a cheaper question.", sqlstate=INSUFFICIENT)
    eps_after, delta_after = guarantee(after, delta_granted)
    eps_after = max(eps_after, Decimal(shown_before[0]))
    delta_after = max(delta_after, Decimal(shown_before[1]))
    if eps_after > epsilon_granted:
        raise DPError(f"insufficient budget: this query costs epsilon {_plain(eps_after - Decimal(shown_before[0]))}, "
                      f"delta {_plain(delta_after - Decimal(shown_before[1]))}; remaining epsilon "
                      f"{_plain(epsilon_granted - Decimal(shown_before[0]))}, delta "
                      f"{_plain(max(Decimal(0), delta_granted - Decimal(shown_before[1])))}",
                      hint="See dp.my_budget() and dp.cost(query); ask an administrator for more budget "
                           "or ask a cheaper question.", sqlstate=INSUFFICIENT)
    return Charge(after, eps_after, delta_after, _plain(eps_after - Decimal(shown_before[0])),
                  _plain(delta_after - Decimal(shown_before[1])))
