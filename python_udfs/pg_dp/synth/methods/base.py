"""What every synthesis method hands on: noisy marginals, and the interface it implements.

A method (pg_dp.synth.methods: MST today) turns exact counts, which only a ``Measure``
callback sees (SQL GROUP BY inside the database, or numpy in the unit tests), into a
``Plan``: the noisy marginals it released and what they cost.  Everything after that,
fitting a model, sampling rows and the relational steps that read the plan
(pg_dp.synth.relational.parent_strengths, pg_dp.synth.keys.model_threshold), is
post-processing of the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Protocol, Sequence

import numpy as np

Clique = tuple[str, ...]
# measure(cliques, compress) -> exact count arrays, one per clique, shaped by the attributes'
# domain sizes; with a compression map (attribute -> original code -> compressed code), over
# the compressed codes (counted so in the database: a huge domain never becomes a dense array)
Measure = Callable[..., list[np.ndarray]]
# Largest marginal (cells, compressed) measured for selection or the model: with MAX_CLIQUE_CELLS
# this bounds the memory of a run whatever the declared domains (1e6 float64 cells = 8 MB)
MAX_MEASURE_CELLS = 1_000_000


@dataclass
class NoisyMarginal:
    clique: Clique
    values: np.ndarray          # noisy counts over the ORIGINAL codes (1-ways) or the compressed ones
    stddev: float
    compressed: bool = False


@dataclass
class Plan:
    """What a run measured and how; enough to fit the model and to explain the release."""
    domain: dict[str, int]
    rho: float
    sensitivity: int
    one_way: list[NoisyMarginal] = field(default_factory=list)
    compress: dict[str, np.ndarray] = field(default_factory=dict)   # original code -> compressed code
    selected: list[Clique] = field(default_factory=list)
    required: list[Clique] = field(default_factory=list)
    two_way: list[NoisyMarginal] = field(default_factory=list)
    total: float = 0.0
    measurements: int = 0
    selection_rho: float = 0.0  # zCDP spent by the exponential-mechanism selections
    coarse: dict[str, np.ndarray] = field(default_factory=dict)    # compressed code -> coarse bin


class Dependency(NamedTuple):
    """A functional dependency the sampled rows must meet (a hard denial constraint X -> Y):
    the method draws rows conditioned on it.  ``nulls``: attribute -> its NULL code (original
    codes); a NULL in X or Y never breaks the dependency, so those rows stay free."""
    determinants: tuple[str, ...]
    dependent: str
    nulls: dict


COARSE = "\x00coarse"       # suffix of a coarse attribute's name (no column name holds a NUL)


def coarse_name(attr: str) -> str:
    return attr + COARSE


def base_name(attr: str) -> str:
    return attr[:-len(COARSE)] if attr.endswith(COARSE) else attr


def spent_rho(plan: Plan) -> float:
    """zCDP cost of the Gaussian measurements, recomputed from their noise scales (the
    selection's cost, plan.selection_rho, is not included)."""
    s = plan.sensitivity
    cost = sum((s / m.stddev) ** 2 / 2 for m in plan.one_way + plan.two_way)
    return cost


def total_rho(plan: Plan) -> float:
    """zCDP cost of the whole run: the Gaussian measurements and the selections."""
    return spent_rho(plan) + plan.selection_rho


class Method(Protocol):
    """A synthesis method, in four steps (OpenDP's extras/mbi synthesizers have the same shape):

    - ``select_and_measure``: choose which marginals to measure and measure them with noise,
      from the exact counts ``measure`` returns (selection and measurement interleave: what
      is chosen next depends on what was measured), within ``rho`` (zCDP) at the given
      sensitivity (rows one privacy unit can move); ``required`` cliques (the attributes of
      denial constraints) are measured whatever the selection says.  The only step that
      touches data; it returns a Plan of noisy marginals only.
    - ``fit``: a model of the plan (post-processing) whose total is ``total`` (the table's DP
      row count, a measurement of its own: never the sum of noisy marginals).
    - ``sample``: rows from the model over the ORIGINAL codes of each attribute; ``given``:
      functional dependencies (``Dependency``) the rows are drawn conditioned on.
    - ``one_way_noise``: before anything is measured, the noise sd a 1-way marginal cell of
      the largest attribute gets at this rho (the dry run tells it).
    """
    name: str
    description: str            # the copy's provenance (dp.synthetic_tables.method)
    mechanism: str              # the ledger's description of the noise

    def select_and_measure(self, domain: dict[str, int], measure: Measure, rho: float, sensitivity: int,
                           required: Sequence[Clique], progress: Callable[[str], None]) -> Plan: ...

    def fit(self, plan: Plan, total: float | None, tick: Callable[[], None]): ...

    def sample(self, model, plan: Plan, rows: int, rng: np.random.Generator,
               tick: Callable[[], None], given: Sequence[Dependency] = ()) -> dict[str, np.ndarray]: ...

    def one_way_noise(self, sizes: dict[str, int], rho: float, sensitivity: int) -> tuple[float, int]: ...

    def preload(self, tick: Callable[[], None]) -> None: ...
