"""Everything one table's synthesis holds, declared in one place.

A ``TableState`` is made by pg_dp.synth.run for each table of a call, before the charge
(the table's catalog description, the budget asked, how its foreign keys are kept, the
parent its rows are generated under), and filled in after the charge as the run goes
(the rows measured and their sensitivity, the DP counts, the method's noisy measurements
and model, the key histograms, and for a child the fan-out and its parent slots).  Only
pg_dp.synth.run assigns its fields; the other modules read a state and return what they
computed (pg_dp.synth.relational's Anchor, Fanout and Slots, pg_dp.synth.keys's
KeyHistogram), so that who changes what stays visible in one file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

import numpy as np

from . import domain as dom
from .links import Link
from .methods.base import Method, Plan
from .table import Target


@dataclass
class TableState:
    # ---- before the charge (the plan)
    t: Target                                   # the table as the catalog describes it
    schema: str                                 # the shadow schema written to
    caller: str                                 # quoted role name of the caller (gets SELECT on the copy)
    epsilon: Decimal                            # this table's share of the call's budget
    delta: Decimal
    rows: int | None                            # rows asked for (None: the DP count, or the parents' fan-outs)
    method: Method                              # select and measure -> fit -> sample (pg_dp.synth.methods)
    rng: np.random.Generator                    # post-processing draws only (never for released values)
    phase: Callable[[str], None]                # progress NOTICE
    notice: Callable[..., None]                 # NOTICE (message, hint)
    links: list[Link] = field(default_factory=list)          # the foreign keys the copy keeps
    parent: Link | None = None                  # the link whose parents the rows are generated under
    anchors: list = field(default_factory=list)               # relational.Anchor: child dates after parent dates
    agreements: list = field(default_factory=list)            # relational.Agreement: second paths to a table
    row_cap: int | None = None                  # most rows the denial constraints allow
    row_cap_reason: str = ""
    # ---- after the charge
    src: str = ""                               # the rows measured: the table, or a TEMP table of them
    sensitivity: int = 1                        # rows of the measured ones one privacy unit can move
    counts: dict = field(default_factory=dict)  # DP counts: 'total' rows, distinct values of regenerated columns
    grids: dict = field(default_factory=dict)   # column -> the grid step found with DP (pg_dp.synth.grid)
    modelled: list[dom.Column] = field(default_factory=list)  # the columns of the model (parent attributes too)
    plan: Plan | None = None                    # the method's noisy measurements
    model: Any = None                           # the method's fitted model
    key_models: dict = field(default_factory=dict)            # link name -> keys.KeyHistogram
    # ---- a child generated under its parent (pg_dp.synth.relational)
    unit_rows: np.ndarray | None = None         # distribution of the child's rows per unit (post-processing)
    tau: int | None = None                      # rows per unit its marginals are measured over
    full_count: tuple | None = None             # (DP count of a child's rows, its expected error): relational.count_rows
    pure_share: Decimal = Decimal(0)            # of epsilon: its relational measurements (Laplace), relational.pure_share
    cond: list[dom.Column] = field(default_factory=list)      # parent attributes joined to its rows
    fanout: Any = None                          # relational.Fanout: children per parent, by parent attribute
    slots: Any = None                           # relational.Slots: the synthetic parents' children
