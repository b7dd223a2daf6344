"""dp_synthesize: the executor's handler, and the order of the steps of each table.

One call synthesizes one table, or every protected table of a schema, a dataset or a list
(pg_dp.synth.schema: parents first).  For each table, a ``Run``:

1. before the charge, from public metadata only: the table (pg_dp.synth.table), how its
   foreign keys are kept (links) and the parent its rows are generated under (relational),
   what its denial constraints allow (constraints), the plan and its cost (budget; the dry
   run stops here);
2. the charge (committed on its own, before anything is read; one per dataset for a call);
3. after it, in one transaction: the rows measured and DP discovery (discover), a child's
   fan-out (relational), the method's measurements and model (marginals, methods), the rows
   (sample), the constraints met (constraints), and the copy written and swapped in
   (pg_dp.synth.write): a failure leaves the previous version in place.

Every value a table's run computes lives in its TableState (pg_dp.synth.state); only this
module assigns its fields.
"""

from __future__ import annotations

from decimal import Decimal
import math
import secrets
import time
import uuid

import numpy as np

from ..core import catalog, db, trust
from ..dp import accountant, ledger
from ..core.errors import DPError
from . import budget, constraints, discover, grid, keys, links, marginals, methods, relational, sample, write
from . import schema as schemas
from .state import TableState
from .table import MAX_ROWS, key_values, load

MAX_ROUNDS = 5                        # sampling rounds to replace rows breaking CHECK/UNIQUE


class Run:
    """One table of a dp_synthesize call: its plan before the charge, its work after it."""

    def __init__(self, source: str, epsilon, delta, target_schema, rows, dry_run, siblings: dict | None = None):
        self.started = time.monotonic()
        epsilon = _positive(epsilon, "epsilon")
        delta = Decimal(str(delta)) if delta is not None else Decimal(db.setting("default_delta"))
        if not (0 < delta < 1):
            raise DPError(f"delta must be between 0 and 1 for synthesis (got {delta})", sqlstate="22023",
                          hint="Synthesis adds Gaussian noise, which needs a small delta such as 1e-6; "
                               "leave delta out for the default (dp.set_setting('default_delta', ...)).")
        if rows is not None and rows < 1:
            raise DPError("rows must be at least 1", hint="Leave rows out to get as many rows as the source (DP count).")
        self.dry_run = bool(dry_run)
        self.role = catalog.outer_role()
        self.admin = catalog.is_admin(self.role)
        caller = db.quote_ident(db.execute("SELECT pg_catalog.pg_get_userbyid($1) AS r", [self.role], ["oid"])[0]["r"])
        t = load(db.regclass_oid(source))
        if t.refused:
            raise DPError(f"{t.qualified} cannot be synthesized: " + "; ".join(t.refused),
                          hint="Nothing was charged. Drop or change what is named, declare public values "
                               "(dp.set_public_values), or synthesize a view-free copy of the table without it.",
                          sqlstate="0A000")
        # a row naming a unit of the dataset twice is bounded for one only: refused before the charge
        catalog.require_bounded_references(
            t.relid, t.qualified, t.dataset, t.unit or t.path_unit,
            f"An administrator declares every reference but one not personal (dp.protect('{t.qualified}', "
            f"dataset => '{t.dataset}', not_personal => ARRAY['<key or column>'])). Nothing was charged.")
        shadow = self._target_schema(target_schema, t.schema)
        # refused before the charge: another role's code in the column types, a copy another role made
        write.check_source(t.relid, shadow, t.name, self.notice)
        st = self.st = TableState(t, shadow, caller, epsilon, delta, rows, methods.get(),
                                  np.random.default_rng(secrets.randbits(64)), self.phase, self.notice)
        # siblings: relid -> TableState of the tables synthesized earlier in the same call
        st.links = links.plan(t, shadow, siblings or {}, self.notice)
        self._plan_parent(relational.choose_parent(t, st.links))
        st.pure_share = relational.pure_share(st)       # accounted as epsilon (budget.costs)

    def _plan_parent(self, parent):
        """The link the rows are generated under, its second paths and the dates that follow it."""
        st, t = self.st, self.st.t
        for a in st.anchors:                # planned under another parent: no longer derived
            t.derived.remove(a.offset)
            t.needs_bounds.remove(a.offset.name)
        st.parent, st.anchors = parent, []
        st.agreements = relational.plan_agreements(t, st.links, st.parent)
        if st.parent is not None:
            st.anchors = relational.plan_anchors(t, st.parent.parent)
            for a in st.anchors:            # the offset is modelled (DP bounds); the child column is
                t.derived.append(a.offset)  # not, but keeps its bounds (its values are clipped into them)
                t.needs_bounds.append(a.offset.name)

    # ------------------------------------------------------------------ plan
    def _target_schema(self, requested, source_schema: str) -> str:
        if requested is not None and not self.admin:
            raise DPError("only a pg_dp administrator may choose the target schema",
                          hint="Leave target_schema out: your synthetic tables go to your own shadow schema "
                               f"{write.shadow_schema(self.role, False)}.", sqlstate="42501")
        # the shared shadow schema is written by administrators only; anyone else gets a schema of their own
        shadow = requested or write.shadow_schema(self.role, self.admin)
        if shadow in (source_schema, "pg_catalog", "dp", "dp_internal", "information_schema") \
                or shadow.startswith("pg_"):
            raise DPError(f"synthetic tables cannot go to schema {shadow}",
                          hint="Use a schema of their own, e.g. dp_synthetic.", sqlstate="42501")
        return shadow

    def describe(self) -> list[str]:
        st, t = self.st, self.st.t
        lines = []
        for c in t.columns:
            if c.kind == "categorical":
                what = f"categorical, {len(c.values)} values ({c.source})" if c.values else \
                    "categorical, values found with DP partition selection"
            elif c.kind == "numeric":
                what = (f"numeric on [{c.lower:g}, {c.upper:g}] ({c.source})" if c.name not in t.needs_bounds
                        else "numeric, bounds estimated with DP")
            else:
                what = f"{'chosen' if c.source.startswith('foreign key') else 'regenerated'} ({c.source})"
            lines.append(f"{c.name}: {what}")
        for a in st.anchors:
            lines.append(f"{a.child}: {st.parent.parent.t.name}.{a.parent} plus an offset modelled with the parent's "
                         "attributes (bounds estimated with DP)")
        for a in st.agreements:
            lines.append(f"{a.column}: {st.parent.parent.t.name}.{a.theirs} of its parent"
                         + (" (the privacy unit: the two paths agree by construction)" if a.flag is None else
                            " or another one, as often as a modelled same/other column says"))
        lines += [f"generated column {g}: computed by the server" for g in t.generated]
        lines += [f"denial constraint: {d.text}" for d in t.dcs]
        lines += [f"foreign key ({', '.join(k.cols)}) -> {k.target or 'the copy itself'} "
                  f"({k.describe(attached=k is st.parent)})" for k in st.links]
        return lines

    def plan_notice(self):
        """Before the charge: what the constraints allow (an unsatisfiable set is refused here), and the plan."""
        st = self.st
        st.row_cap, st.row_cap_reason = constraints.capacity(st)
        self.notice(f"plan for {st.t.qualified} -> {db.quote_ident(st.schema)}.{db.quote_ident(st.t.name)}: "
                    f"epsilon {st.epsilon}, delta {st.delta}; " + "; ".join(self.describe()))

    def statement(self) -> str:
        st = self.st
        return (f"CALL dp_synthesize({st.t.qualified}, epsilon => {st.epsilon}, delta => {st.delta}"
                + (f", rows => {st.rows}" if st.rows else "") + ")")

    def dry_run_notices(self):
        st = self.st
        e_disc, d_disc, e_model, d_model = budget.costs(st)
        remaining = catalog.remaining_budget(self.role, st.t.dataset)
        left = f"epsilon {remaining[0]}, delta {remaining[1]}" if remaining else "no budget"
        self.notice(f"dry run: would charge epsilon {st.epsilon}, delta {st.delta} to dataset "
                    f"{st.t.dataset}; remaining: {left}")
        sensitivity = st.t.max_rows if st.t.unit or st.t.path else 1
        need, sd, error, cells = budget.useful_rows(st, float(e_model), float(d_model), sensitivity)
        self.notice(f"dry run: the row count is a DP count (expected error {error:.3g} rows); marginal cells "
                    f"get noise sd {sd:.3g}; under about {need} rows the widest column ({cells} cells) comes out "
                    f"with a 1-way TVD over 0.05: too small to be useful at epsilon {st.epsilon}")

    # ------------------------------------------------------------------ run
    def execute(self):
        self.plan_notice()
        if self.dry_run:
            self.dry_run_notices()
            return
        st = self.st
        ledger_id = self.charge(st.t.dataset, st.epsilon, st.delta, self.statement())
        yield                                   # the executor commits the charge before any row is read
        self.work(ledger_id)

    def cost(self) -> accountant.Cost:
        """What this run releases, in the accountant's terms: the model's Gaussian measurements are
        rho-zCDP (the accountant's rho_for of its share, at least the rho the model uses), discovery
        and partition selection (epsilon, delta)."""
        e_disc, d_disc, e_model, d_model = budget.costs(self.st)
        return accountant.Cost(rho=accountant.rho_for(float(e_model), float(d_model)),
                               epsilon=float(e_disc), delta=float(d_disc))

    def charge(self, dataset: str, epsilon: Decimal, delta: Decimal, statement: str,
               cost: accountant.Cost | None = None) -> int:
        ledger_id = ledger.charge(self.role, dataset, cost if cost is not None else self.cost(), statement,
                                  f"synthesis: {self.st.method.mechanism} + DP counts "
                                  "(Laplace; the row count Gaussian in zCDP when nothing is discovered)",
                                  self.st.t.data_version, f"synthesis:{uuid.uuid4().hex}", asked=epsilon)
        self.phase(f"charged epsilon {epsilon}, delta {delta} to dataset {dataset} (ledger id {ledger_id})")
        return ledger_id

    def work(self, ledger_id: int):
        """Everything after the charge: read, measure, model, sample, write (one transaction)."""
        st, t = self.st, self.st.t
        e_disc, d_disc, e_model, d_model = budget.costs(st)
        # no cast or domain CHECK of another role added since the plan (before the source is read)
        trust.require_no_column_code(t.relid, t.qualified, "synthesized")
        db.execute("SELECT pg_catalog.set_config('track_counts', 'off', true)")
        if db.execute("SELECT dp_internal.is_citus_table($1) AS c", [t.relid], ["oid"])[0]["c"]:
            # Citus: the copy (a local table on the coordinator) and its schema are written in
            # this transaction after distributed reads, which Citus allows over one connection
            # per node only
            db.execute("SELECT pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true)")
        extra = []
        if st.parent and relational.holds_unit_under(st):
            # a child holding the unit under a parent that holds it too: generated under it only
            # when most of its rows name their parent's unit (payments: their order's customer;
            # a review of someone else's sale is generated under its writer)
            e_agree = float(st.epsilon) * relational.AGREE_SHARE
            e_disc -= Decimal(str(e_agree))
            if not relational.parent_agrees(st, e_agree):
                fallback = relational.unit_parent(t, st.links)
                self.notice(f"{t.qualified}: most rows name another {t.unit} than their "
                            f"{st.parent.parent.t.name}'s (DP): generated under "
                            + (fallback.parent.t.name if fallback else "no parent")
                            + f" instead; {', '.join(st.parent.cols)} chosen uniformly among the synthetic "
                            f"{st.parent.parent.t.name}")
                self._plan_parent(fallback)
        if st.parent:
            # the fan-out first (read from the tables), then the child's rows: a uniform sample of at
            # most tau per unit, tau from the noisy fan-outs (relational.sample_size)
            e_fan = float(st.epsilon) * budget.FANOUT_SHARE
            e_disc -= Decimal(str(e_fan))
            st.fanout = relational.measure_fanout(st, e_fan)
            st.cond = relational.parent_attributes(st)
            st.unit_rows = relational.unit_rows(st)
            limit = relational.rows_limit(t)
            if st.unit_rows is None and not t.own_max_rows:     # rows per unit unknown: a parent's children
                limit = relational.sample_size(np.r_[0.0, st.fanout.counts()[1:]], limit)
            st.tau = relational.sample_size(st.unit_rows, limit)
            if not st.rows:         # how many children in all: a count of every unit's rows, up to a high bound
                e_total = float(st.epsilon) * relational.TOTAL_SHARE
                e_disc -= Decimal(str(e_total))
                st.full_count = relational.count_rows(st, e_total)
            st.src, st.sensitivity = discover.snapshot(t, st.tau)
            self.phase(f"children's marginals measured over a uniform sample of at most {st.tau} rows per unit "
                       f"(sensitivity {st.tau}; max_rows_per_unit "
                       + (f"{t.max_rows})" if t.own_max_rows else "not set: fitted with DP from the fan-outs)"))
            st.src, extra = relational.join_parent(st)
        elif relational.needs_rows_fit(st):
            # rows per unit not declared, no parent to draw them from: fitted with DP (a uniform
            # sample of at most that many rows per unit is measured, the bound its sensitivity)
            e_rows = float(st.epsilon) * relational.ROWS_SHARE
            e_disc -= Decimal(str(e_rows))
            st.tau = relational.fit_rows_per_unit(st, e_rows)
            st.src, st.sensitivity = discover.snapshot(t, st.tau)
        else:
            st.src, st.sensitivity = discover.snapshot(t)
        counts = discover.discover(st, float(e_disc), float(d_disc))
        if st.anchors:
            st.anchors = relational.useful_anchors(st)
        for link in st.links:
            if link.kind == links.SIBLING and len(link.cols) == 1:        # a parent written earlier in this call
                t.column(link.column).choices = key_values(link.target, link.refcol) or [None]
        skip = relational.anchored(st)
        modelled = [c for c in t.columns if c.kind != "identifier" and c.name not in skip]
        modelled += [a.offset for a in st.anchors] + extra
        st.modelled, st.counts = modelled, counts
        budget.warn_small(st, counts["total"], float(e_model), float(d_model), st.sensitivity)
        rho_grid = budget.grid_rho(st, float(e_model), float(d_model))
        st.grids = grid.detect(st, rho_grid)
        st.plan, st.model, st.key_models = marginals.model(st, modelled, float(e_model), float(d_model), rho_grid)
        n = int(st.rows or counts["total"])
        if st.parent and not st.rows:
            st.slots = relational.child_rows(st)
            n = max(1, int(st.slots.parents.size))
        if st.row_cap is not None and n > st.row_cap:
            self.notice(f"writing {st.row_cap} rows instead of {n}: {st.row_cap_reason}")
            n = st.row_cap
        written = self._write(sample.sample(st, n), n, ledger_id)
        for name in (discover.SRC, marginals.CODES, marginals.COMPRESSED, write.STAGE):
            write.drop_temp(name)
        self.phase(f"wrote {written} rows to {db.quote_ident(st.schema)}.{db.quote_ident(t.name)}")

    def _write(self, values: dict[str, np.ndarray], n: int, ledger_id: int) -> int:
        """Stage, drop rows breaking CHECK/UNIQUE (sampling more if needed), then swap in (pg_dp.synth.write)."""
        st, t = self.st, self.st.t
        w = self.destination()
        for _ in range(MAX_ROUNDS):
            fixed, keep = constraints.repair(st, values)
            staged = write.stage(w, np.flatnonzero(keep), lambda rows, first: sample.render(st, fixed, rows, first))
            bad = write.misfits(w)
            good = staged - len(bad)
            if good >= n or not (t.checks or t.uniques or t.domains):
                break
            more = min(10 * n, int((n - good) * 1.5) + 10)
            self.phase(f"{len(bad)} row(s) broke CHECK/UNIQUE constraints; sampling {more} more")
            extra = sample.sample(st, more)
            values = {k: np.concatenate([v[keep], extra[k]]) for k, v in fixed.items()}
        if bad:
            self.notice(f"dropped {len(bad)} sampled row(s) that broke CHECK or UNIQUE constraints")
        provenance = {"source": t.qualified, "epsilon": str(st.epsilon), "delta": str(st.delta),
                      "method": st.method.description, "ledger_id": ledger_id, "data_version": t.data_version,
                      "denial_constraints": [d.text for d in t.dcs],
                      "regenerated": [c.name for c in t.columns if c.kind == "identifier"]}
        return write.swap(w, bad, n, provenance,
                          lambda table, execute: keys.fill_self_references(st, table, execute))

    def destination(self) -> write.TableWrite:
        """What pg_dp.synth.write needs to write this table's copy."""
        st, t = self.st, self.st.t
        return write.TableWrite(
            source=t.relid, source_name=t.qualified, schema=st.schema, name=t.name,
            columns=[(c.name, c.sql_type) for c in t.columns], caller=st.caller,
            domains=dict(t.domains), checks=list(t.checks), uniques=[list(u) for u in t.uniques],
            serials=list(t.serials), integers={c.name for c in t.columns if c.fam == "integer"},
            identity_always=t.identity_always,
            foreign_keys=[write.ForeignKey(k.name, list(k.cols), list(k.refcols), k.target) for k in st.links],
            vocabularies=[k.ref for k in st.links if k.kind == links.VOCABULARY])

    # ------------------------------------------------------------ progress
    def phase(self, message: str):
        self.notice(f"dp_synthesize {self.st.t.name}: {message} ({time.monotonic() - self.started:.1f} s)")

    def notice(self, message: str, hint: str | None = None):
        db.notice(message, hint)


def _positive(value, name) -> Decimal:
    if value is None or not math.isfinite(float(value)) or float(value) <= 0:
        raise DPError(f"{name} must be a finite number greater than zero",
                      hint="e.g. epsilon => 1.0")
    return Decimal(str(float(value)))    # 5.0, whether it came as 5 (JSON) or 5.0


def synthesize_steps(source=None, epsilon=None, delta=None, target_schema=None, rows=None, dry_run=False,
                     sources=None, schema=None, dataset=None):
    """The executor's handler of CALL dp_synthesize: phases (see pg_dp.executor). One table
    (source, an oid), or several in one call: every protected table of a schema, of a
    dataset, or the oids in sources (pg_dp.synth.schema)."""
    if rows is not None and not (isinstance(rows, int) and 1 <= rows <= MAX_ROWS):
        raise DPError(f"rows must be between 1 and {MAX_ROWS}",
                      hint="Leave rows out to get as many rows as the source (DP count).", sqlstate="22023")
    if source is not None:
        yield from Run(str(int(source)), epsilon, delta, target_schema, rows, dry_run).execute()
        return ""
    if rows is not None:
        raise DPError("rows applies to one table only", sqlstate="22023",
                      hint="Leave rows out: each table gets its DP row count (children: the fan-out of their parents).")
    epsilon = _positive(epsilon, "epsilon")
    if delta is not None and not (0 < float(delta) < 1):
        # checked on the whole call: split over the tables, delta = 1 would pass each table's check
        # and then be refused as more than the budget
        raise DPError(f"delta must be between 0 and 1 for synthesis (got {delta})", sqlstate="22023",
                      hint="Synthesis adds Gaussian noise, which needs a small delta such as 1e-6; "
                           "leave delta out for the default (dp.set_setting('default_delta', ...)).")
    if sources is not None and not (isinstance(sources, list) and all(isinstance(r, int) for r in sources)):
        raise DPError("malformed pg_dp request", sqlstate="22023")
    relids = schemas.resolve(schema, dataset, sources)
    label = f"schema {schema}" if schema is not None else f"dataset {dataset}" if dataset is not None else \
        "ARRAY[" + ", ".join(schemas.name(r) for r in relids) + "]"
    yield from synthesize_many(relids, epsilon, delta, target_schema, dry_run, label, schema)
    return ""


def synthesize_many(relids: list[int], epsilon, delta, target_schema, dry_run: bool, label: str,
                    schema: str | None):
    """The handler's phases for several tables: plan (and dry run), one charge per dataset, then
    every table in order in one transaction, so that the shadow schema changes all at once.  The
    charged epsilon and delta are split evenly over the tables."""
    ordered, notes = schemas.order(relids)
    share_e = Decimal(str(float(epsilon))) / len(ordered)
    share_d = (Decimal(str(float(delta))) if delta is not None else Decimal(db.setting("default_delta"))) / len(ordered)
    runs: dict[int, Run] = {}
    for relid in ordered:
        runs[relid] = Run(str(relid), share_e, share_d, target_schema, None, dry_run,
                          {r: runs[r].st for r in runs})
    first = runs[ordered[0]]
    for line in notes:
        first.notice(line, hint="Break the cycle with a nullable key; its children then attach uniformly.")
    per_dataset: dict[str, list[Run]] = {}
    for relid in ordered:
        per_dataset.setdefault(runs[relid].st.t.dataset, []).append(runs[relid])
    first.notice(f"plan for {label}: {len(ordered)} table(s) in this order: "
                 + ", ".join(runs[r].st.t.qualified for r in ordered)
                 + f"; epsilon {float(share_e):.6g} and delta {float(share_d):.3g} each; total "
                 + "; ".join(f"dataset {d}: epsilon {sum(r.st.epsilon for r in rs)}, "
                             f"delta {sum(r.st.delta for r in rs)}" for d, rs in per_dataset.items()))
    for relid in ordered:
        runs[relid].plan_notice()
    if dry_run:
        for relid in ordered:
            runs[relid].dry_run_notices()
        return
    statement = f"CALL dp_synthesize({label}, epsilon => {epsilon}" + (f", delta => {delta}" if delta else "") + ")"
    ledger_ids = {d: rs[0].charge(d, sum(r.st.epsilon for r in rs), sum(r.st.delta for r in rs), statement,
                                  cost=sum((r.cost() for r in rs), accountant.Cost()))
                  for d, rs in per_dataset.items()}
    yield                                       # the charges are committed before any row is read
    for relid in ordered:
        runs[relid].work(ledger_ids[runs[relid].st.t.dataset])
    if schema is not None:
        declared = [int(r["r"]) for r in db.execute(
            "SELECT p.relid::int8 AS r FROM dp_internal.public_tables p JOIN pg_catalog.pg_class c ON c.oid = p.relid "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 ORDER BY 1",
            [schema], ["text"])]
        if declared:
            write.copy_public(declared, first.st.schema, first.st.caller)
    first.notice(f"dp_synthesize {label}: wrote {len(ordered)} synthetic table(s) to {first.st.schema}")
