"""dp_synthesize: the steps that talk to the server (through pg_dp.db only).

1. plan the domain from public metadata only, and tell the cost;
2. charge the caller's budget (committed on its own, before anything is read);
3. discovery, when the metadata is not enough (charged share): bounds of numeric
   columns, frequent values of text columns, row and distinct-value counts;
4. encode every modelled column to a small code in a TEMP table (SQL), and count
   marginals with GROUP BY GROUPING SETS: no row ever reaches Python;
5. select and measure (pg_dp.synth.mst), fit and sample (mbi);
6. decode, regenerate keys and identifiers, repair denial constraints;
7. stage the rows, drop those breaking CHECK/UNIQUE, and write the shadow table
   under a temporary name, then swap it in: one transaction, so a failure leaves
   the previous version in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
import datetime as dt
import json
import math
import secrets
import time
import uuid

import numpy as np

from ..core import catalog, db, trust
from ..dp import ledger, mechanisms
from ..core.errors import DPError
from . import dc as dcmod
from . import domain as dom
from . import identifiers, keys, mst, relational, write

COUNT_SHARE = Decimal("0.05")         # of epsilon: the DP row count (Laplace), when discovery runs
COUNT_RHO_SHARE = 0.02                # of rho otherwise: the row count as a Gaussian, composed in zCDP
FANOUT_SHARE = 0.2                    # of a child's epsilon: the fan-out per parent, by parent attribute
DISCOVERY_SHARE = Decimal("0.1")      # of epsilon, when discovery is needed at all ...
VALUES_SHARE = Decimal("0.25")        # ... or when text values must be found (partition selection is costly)
VALUES_PART = 0.6                     # of the discovery share, for the text values
COVERAGE = 0.5                        # discovered values must cover this share of rows to be modelled
BOUNDS_NEAR_P = 1e-5                  # DP bounds: chance that an empty bucket next to the data widens them
BOUNDS_FAR_P = 1e-10                  # ... and that any empty bucket far away does (see _bounds)
MAX_ROUNDS = 5                        # sampling rounds to replace rows breaking CHECK/UNIQUE
SRC = "pg_dp_synth_src"
CODES = "pg_dp_synth_codes"
COMPRESSED = "pg_dp_synth_compressed"
TRIALS = 5                            # random tables the trial repairs (each must settle)
TRIAL_ROWS = 1_000                    # rows of the pre-charge trial of the denial-constraint repair


@dataclass
class Target:
    relid: int
    schema: str
    name: str
    qualified: str
    dataset: str
    unit: str | None
    max_rows: int
    data_version: int
    columns: list[dom.Column] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)          # single-column PRIMARY KEY / UNIQUE
    checks: list[str] = field(default_factory=list)
    uniques: list[list[str]] = field(default_factory=list)  # multi-column ones
    foreign_keys: list[dict] = field(default_factory=list)   # contype 'f' rows of pg_constraint
    dcs: list = field(default_factory=list)
    domains: dict = field(default_factory=dict)              # column -> its domain type (CHECKs checked when staged)
    serials: list[str] = field(default_factory=list)          # columns whose default takes a sequence's nextval
    identity_always: bool = False                             # a GENERATED ALWAYS AS IDENTITY column
    refused: list[str] = field(default_factory=list)          # what cannot be copied (refused before the charge)
    path: list[dict] = field(default_factory=list)            # foreign keys to the table holding the unit
    path_unit: str | None = None                              # the unit column at the end of the path
    opaque: dict = field(default_factory=dict)                # column -> type category (arrays 'A', json, inet ...)
    needs_bounds: list[str] = field(default_factory=list)
    needs_values: list[str] = field(default_factory=list)
    derived: list[dom.Column] = field(default_factory=list)   # modelled, not written: a child date's offset

    def column(self, name: str) -> dom.Column:
        return next(c for c in self.columns + self.derived if c.name == name)


class Run:
    def __init__(self, source: str, epsilon, delta, target_schema, rows, dry_run, siblings: dict | None = None):
        self.started = time.monotonic()
        self.rng = np.random.default_rng(secrets.randbits(64))
        self.epsilon = _positive(epsilon, "epsilon")
        self.delta = Decimal(str(delta)) if delta is not None else Decimal(db.setting("default_delta"))
        if not (0 < self.delta < 1):
            raise DPError("delta must be between 0 and 1 for synthesis",
                          hint="Synthesis adds Gaussian noise, which needs a small delta such as 1e-6.")
        if rows is not None and rows < 1:
            raise DPError("rows must be at least 1", hint="Leave rows out to get as many rows as the source (DP count).")
        self.rows = rows
        self.dry_run = bool(dry_run)
        self.role = catalog.outer_role()
        self.admin = catalog.is_admin(self.role)
        self.caller = db.quote_ident(db.execute("SELECT pg_catalog.pg_get_userbyid($1) AS r",
                                                [self.role], ["oid"])[0]["r"])
        self.t = _load(db.regclass_oid(source))
        if self.t.refused:
            raise DPError(f"{self.t.qualified} cannot be synthesized: " + "; ".join(self.t.refused),
                          hint="Nothing was charged. Drop or change what is named, declare public values "
                               "(dp.set_public_values), or synthesize a view-free copy of the table without it.",
                          sqlstate="0A000")
        # a row naming a unit of the dataset twice is bounded for one only: refused before the charge
        catalog.require_bounded_references(
            self.t.relid, self.t.qualified, self.t.dataset, self.t.unit or self.t.path_unit,
            f"An administrator declares every reference but one not personal (dp.protect('{self.t.qualified}', "
            f"dataset => '{self.t.dataset}', not_personal => ARRAY['<key or column>'])). Nothing was charged.")
        self.schema = self._target_schema(target_schema)
        # refused before the charge: another role's code in the column types, a copy another role made
        write.check_source(self.t.relid, self.schema, self.t.name, self.notice)
        self.siblings = siblings or {}             # relid -> Run of the tables synthesized in the same call
        self.parent = None                         # the link whose parent the rows are generated under
        self.links = []
        for fk in sorted(self.t.foreign_keys, key=lambda k: -len(k["cols"])):   # keys of several columns first
            link = self._link(fk)
            if link:
                self.links.append(link)

    # ------------------------------------------------------------------ plan
    def _target_schema(self, requested) -> str:
        if requested is not None and not self.admin:
            raise DPError("only a pg_dp administrator may choose the target schema",
                          hint="Leave target_schema out: your synthetic tables go to your own shadow schema "
                               f"{write.shadow_schema(self.role, False)}.", sqlstate="42501")
        # the shared shadow schema is written by administrators only; anyone else gets a schema of their own
        schema = requested or write.shadow_schema(self.role, self.admin)
        if schema in (self.t.schema, "pg_catalog", "dp", "dp_internal", "information_schema") \
                or schema.startswith("pg_"):
            raise DPError(f"synthetic tables cannot go to schema {schema}",
                          hint="Use a schema of their own, e.g. dp_synthetic.", sqlstate="42501")
        return schema

    def _link(self, fk) -> dict | None:
        """How a foreign key is kept in the copy, and the values its column may take.

        - to a table the DBA declared public (dp.declare_public, a vocabulary): the
          table is copied verbatim to the shadow schema, and the column is a choice among
          its keys whose distribution is measured with DP (pg_dp.synth.keys; a key of
          several columns chooses a referenced row and takes all its columns from it);
        - to the table itself (employee.reports_to): another row of the copy (keys);
        - to a protected table that already has a synthetic copy in the shadow schema:
          the column takes that copy's key values (the fan-out per parent is not
          modelled yet: parents are drawn uniformly);
        - otherwise (neither protected nor declared public) the key is not followed: the
          table is never read nor copied, and the column is modelled as a column of its
          own (said in a NOTICE).
        """
        ref = int(fk["ref"])
        if len(fk["cols"]) != 1:
            return self._composite_link(fk)
        column, refcol = fk["cols"][0], fk["refcols"][0]
        if ref == self.t.relid:
            return self._self_link(fk, column, refcol)
        if ref in self.siblings:
            return self._sibling_link(fk, column, refcol, self.siblings[ref])
        if column in self.t.keys:
            self.notice(f"foreign key {fk['conname']} is not kept: its column {column} is also a key, "
                        "and keys are regenerated", hint="Keys of a synthetic copy are new values.")
            return None
        info = _ref_info(ref)
        if not info["protected"] and not info["declared"]:
            # never read, never copied: an undeclared table may hold anything (names, phones)
            self.notice(f"foreign key {fk['conname']} is not kept: {info['q']} is neither protected nor declared "
                        f"public; column {column} is modelled on its own",
                        hint=f"If its rows are public, declare it: SELECT dp.declare_public('{info['q']}'); "
                             "if they are sensitive, protect it in this dataset.")
            return None
        if not info["protected"] and write.foreign_code(ref):
            self.notice(f"foreign key {fk['conname']} is not kept: {info['q']} runs functions of other roles "
                        "when written", hint="Its copy would run them with the extension owner's rights.")
            return None
        if not info["protected"]:          # declared public
            target = f"{db.quote_ident(self.schema)}.{db.quote_ident(info['relname'])}"
            link = {"column": column, "refcol": refcol, "cols": [column], "refcols": [refcol], "source": info["q"],
                    "target": target, "kind": "vocabulary", "name": fk["conname"], "ref": ref}
            if any(column in k["cols"] for k in self.links if k.get("histogram")):
                link["implied"] = True      # set from the row a key of several columns chooses
                return link
            return self._public_link(link)
        copy = db.execute(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS q FROM dp_internal.synthetic_tables s "
            "JOIN pg_catalog.pg_class c ON c.oid = s.relid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE s.source = $1 AND n.nspname = $2", [ref, self.schema], ["oid", "text"])
        if not copy:
            self.notice(f"foreign key {fk['conname']} is not kept: {info['q']} has no synthetic copy in "
                        f"{self.schema} yet", hint=f"Synthesize {info['q']} first, then this table.")
            return None
        target = copy[0]["q"]
        self._set_domain(column, "identifier", f"foreign key to {target}", choices=_key_values(target, refcol))
        return {"column": column, "refcol": refcol, "cols": [column], "refcols": [refcol], "source": info["q"],
                "target": target, "kind": "synthetic parent", "name": fk["conname"], "ref": ref}

    def _set_domain(self, column: str, kind: str, source: str, values=None, choices=None):
        """A key column's domain is known from the plan: no DP bounds or values to find for it."""
        col = self.t.column(column)
        col.kind, col.source = kind, source
        if values is not None:
            col.values, col.other = values, False
        if choices is not None:
            col.choices = choices
        for needs in (self.t.needs_bounds, self.t.needs_values):
            if column in needs:
                needs.remove(column)

    def _public_link(self, link: dict) -> dict:
        """A key to a declared public table: a small vocabulary stays a categorical column of the
        model; a larger one (or a key of several columns) gets a DP histogram of its own."""
        column, col = link["column"], self.t.column(link["column"])
        if col.kind == "identifier":        # the privacy unit: regenerated, the key drawn uniformly
            self._set_domain(column, "identifier", f"foreign key to {link['source']}",
                             choices=_key_values(link["source"], link["refcol"]))
            return link
        values = _key_values(link["source"], link["refcol"], limit=keys.MODEL_KEYS + 1)
        if len(values) <= keys.MODEL_KEYS:
            self._set_domain(column, "categorical", f"foreign key to {link['source']}", values=values)
            link["in_model"] = True
            return link
        self._set_domain(column, "identifier", f"foreign key to {link['source']}, DP histogram over its keys",
                         choices=[None])
        link["histogram"], link["nullable"] = True, col.nullable
        return link

    def _composite_link(self, fk) -> dict | None:
        """A key of several columns: kept when it references a declared public table and none of
        its columns is generated otherwise (a key, the unit, a key to a protected table)."""
        cols, ref = list(fk["cols"]), int(fk["ref"])
        info = _ref_info(ref)
        others = {c for k in self.t.foreign_keys if len(k["cols"]) == 1 and int(k["ref"]) != ref
                  and not _ref_info(int(k["ref"]))["declared"] for c in k["cols"]}
        taken = {c for k in self.links if k.get("histogram") for c in k["cols"]}
        clash = [c for c in cols if c in self.t.keys or c == self.t.unit or c in others or c in taken]
        if not info["declared"] or write.foreign_code(ref) or clash:
            why = (f"{', '.join(clash)} " + ("is" if len(clash) == 1 else "are") + " generated otherwise" if clash
                   else f"{info['q']} is not declared public" if not info["declared"]
                   else f"{info['q']} runs functions of other roles when written")
            self.notice(f"foreign key {fk['conname']} ({', '.join(cols)}) is not kept: {why}; its columns are "
                        "modelled on their own",
                        hint=f"Declare {info['q']} public (dp.declare_public) to keep a key of several columns.")
            return None
        target = f"{db.quote_ident(self.schema)}.{db.quote_ident(info['relname'])}"
        also = []
        for k in self.t.foreign_keys:   # single-column keys of these columns to other public tables
            if len(k["cols"]) == 1 and k["cols"][0] in cols and int(k["ref"]) != ref:
                other = _ref_info(int(k["ref"]))
                also.append({"column": k["cols"][0], "refcol": k["refcols"][0], "source": other["q"]})
        for c in cols:
            self._set_domain(c, "identifier", f"foreign key {fk['conname']} to {info['q']}, DP histogram over its rows",
                             choices=[None])
        return {"column": cols[0], "refcol": fk["refcols"][0], "cols": cols, "refcols": list(fk["refcols"]),
                "source": info["q"], "target": target, "kind": "vocabulary", "name": fk["conname"], "ref": ref,
                "histogram": True, "also": also, "nullable": all(self.t.column(c).nullable for c in cols)}

    def _self_link(self, fk, column: str, refcol: str) -> dict | None:
        """A self-reference: another row of the copy (pg_dp.synth.keys); the NULL share is modelled."""
        if column in self.t.keys or column == self.t.unit or refcol not in self.t.keys:
            self.notice(f"foreign key {fk['conname']} is not kept: it references the table itself"
                        + (f" and {column} is regenerated" if column in self.t.keys or column == self.t.unit
                           else f" through {refcol}, which is not a regenerated key")
                        + f"; column {column} is modelled on its own",
                        hint="A self-reference is kept when it references the table's single-column key.")
            return None
        if self.t.column(column).nullable:    # set or NULL: a two-code column of the model
            self._set_domain(column, "categorical", "self-reference (set or NULL)", values=[keys.SELF])
        else:
            self._set_domain(column, "identifier", "self-reference", choices=[keys.SELF])
        return {"column": column, "refcol": refcol, "cols": [column], "refcols": [refcol], "source": self.t.qualified,
                "target": None, "kind": "self", "name": fk["conname"], "ref": self.t.relid}

    def _sibling_link(self, fk, column: str, refcol: str, parent) -> dict | None:
        """A key to a table synthesized earlier in the same call: the column takes the parent copy's
        keys; along the privacy unit's path (the parent's rows are the same person's), each child is
        attached to a synthetic parent (fan-out per parent measured with DP, children's attributes
        conditioned on the parent's: pg_dp.synth.relational); other keys draw parents uniformly."""
        if column in self.t.keys:
            self.notice(f"foreign key {fk['conname']} is not kept: its column {column} is also a key, "
                        "and keys are regenerated", hint="Keys of a synthetic copy are new values.")
            return None
        target = f"{db.quote_ident(self.schema)}.{db.quote_ident(parent.t.name)}"
        col = self.t.column(column)
        col.kind, col.source, col.choices = "identifier", f"foreign key to {target}", [None]
        for needs in (self.t.needs_bounds, self.t.needs_values):
            if column in needs:
                needs.remove(column)
        link = {"column": column, "refcol": refcol, "source": parent.t.qualified, "target": target,
                "kind": "synthetic parent (this call)", "name": fk["conname"], "ref": parent.t.relid,
                "pending": True, "run": parent}
        if self.parent is None and relational.same_unit(self, parent, fk, column, refcol):
            link["kind"] = "synthetic parent (this call), children attached per parent"
            self.parent = link
            relational.plan_anchors(self)
        return link

    def _discovers(self) -> bool:
        return bool(self.t.needs_bounds or self.t.needs_values or self.t.unit
                    or any(c.kind == "identifier" and c.name not in self.t.keys and not c.choices
                           for c in self.t.columns))

    def count_rho(self) -> float | None:
        """rho of the row count when it is a Gaussian count composed with the model in zCDP:
        when nothing is discovered (no pure-DP step) and the table is not a child.  One
        (epsilon, delta) conversion of the model's rho plus this one then covers both, where
        a Laplace count of 5% of epsilon would cost about 8% of the model's rho at delta 1e-9."""
        if self._discovers() or self.parent is not None:
            return None
        return COUNT_RHO_SHARE * mechanisms.rho_for(float(self.epsilon), float(self.delta))

    def costs(self) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(epsilon, delta) of discovery and of the model; they add up to what is charged
        (the model's share includes the row count when count_rho() says so)."""
        discover = self._discovers()
        if self.count_rho() is not None:
            return Decimal(0), Decimal(0), self.epsilon, self.delta
        share = VALUES_SHARE if self.t.needs_values else DISCOVERY_SHARE
        # the row count is always a DP count of its own (never a sum of noisy marginals)
        e_disc = self.epsilon * COUNT_SHARE + (self.epsilon * share if discover else Decimal(0))
        d_disc = self.delta / 2 if self.t.needs_values else Decimal(0)
        return e_disc, d_disc, self.epsilon - e_disc, self.delta - d_disc

    def describe(self) -> list[str]:
        lines = []
        for c in self.t.columns:
            if c.kind == "categorical":
                what = f"categorical, {len(c.values)} values ({c.source})" if c.values else \
                    "categorical, values found with DP partition selection"
            elif c.kind == "numeric":
                what = (f"numeric on [{c.lower:g}, {c.upper:g}] ({c.source})" if c.name not in self.t.needs_bounds
                        else "numeric, bounds estimated with DP")
            else:
                what = f"{'chosen' if c.source.startswith('foreign key') else 'regenerated'} ({c.source})"
            lines.append(f"{c.name}: {what}")
        for child, pcol, offset in getattr(self, "anchors", []):
            lines.append(f"{child}: {self.parent['run'].t.name}.{pcol} plus an offset modelled with the parent's "
                         "attributes (bounds estimated with DP)")
        lines += [f"generated column {g}: computed by the server" for g in self.t.generated]
        lines += [f"denial constraint: {d.text}" for d in self.t.dcs]
        lines += [f"foreign key ({', '.join(k.get('cols', [k['column']]))}) -> {k['target'] or 'the copy itself'} "
                  f"({keys.describe(k)})" for k in self.links]
        return lines

    # ------------------------------------------------------------ small tables
    def count_error(self, sensitivity: int) -> float:
        """Expected absolute error of the DP row count (mean |discrete Laplace|, about its scale;
        for the Gaussian count, sqrt(2/pi) sigma)."""
        rho = self.count_rho()
        if rho is not None:
            return mechanisms.gaussian_scale(sensitivity, rho) * math.sqrt(2 / math.pi)
        return mechanisms.integer_laplace_scale(sensitivity, float(self.epsilon * COUNT_SHARE))

    def cell_noise(self, epsilon: float, delta: float, sensitivity: int) -> tuple[float, int]:
        """(noise sd of a 1-way marginal cell, largest number of cells of a column) at this budget."""
        modelled = [c for c in self.t.columns if c.kind != "identifier"]
        if not modelled:
            return 0.0, 0
        rho1, _, _ = mst.split_rho(mechanisms.rho_for(epsilon, delta), len(modelled) - 1)
        if len(modelled) == 1:
            rho1 = mechanisms.rho_for(epsilon, delta)
        sizes = {c.name: dom.DEFAULT_BINS + 2 if c.name in self.t.needs_bounds
                 else c.size if c.kind == "numeric" or c.values else 32 for c in modelled}
        largest = max(sizes, key=sizes.get)
        share = mst.one_way_shares(sizes, mst.OPTIONS.one_way_power)[largest]
        return mechanisms.gaussian_scale(sensitivity, rho1 * share), sizes[largest]

    def useful_rows(self, epsilon: float, delta: float, sensitivity: int) -> tuple[int, float, float, int]:
        """Rows a table needs for its 1-way marginals to come out within about 0.05 TVD
        (0.4 * cells * sd / rows, Gaussian noise on every cell), with the figures behind it."""
        sd, cells = self.cell_noise(epsilon, delta, sensitivity)
        error = self.count_error(sensitivity)
        return int(math.ceil(max(8 * cells * sd, 20 * error))), sd, error, cells

    def _warn_small(self, total: int, epsilon: float, delta: float, sensitivity: int):
        need, sd, error, cells = self.useful_rows(epsilon, delta, sensitivity)
        if total < need:
            self.notice(f"{self.t.qualified} is too small to be useful at epsilon {self.epsilon}: about {total} rows "
                        f"(DP count, expected error {error:.3g}), noise sd {sd:.3g} per marginal cell "
                        f"(up to {cells} cells a column); expected 1-way TVD about "
                        f"{min(1.0, 0.4 * cells * sd / max(total, 1)):.2f}",
                        hint=f"Spend more epsilon, or declare bounds and public values; about {need} rows are "
                             "needed at this epsilon.")

    # ------------------------------------------------------------------ run
    def execute(self):
        self.plan_notice()
        if self.dry_run:
            self.dry_run_notices()
            return
        ledger_id = self.charge(self.t.dataset, self.epsilon, self.delta, self.statement())
        yield                                   # the executor commits the charge before any row is read
        self.work(ledger_id)

    def plan_notice(self):
        """Before the charge: what the constraints allow (an unsatisfiable set is refused here), and the plan."""
        self.row_cap = self._constraint_capacity()
        self.notice(f"plan for {self.t.qualified} -> {db.quote_ident(self.schema)}.{db.quote_ident(self.t.name)}: "
                    f"epsilon {self.epsilon}, delta {self.delta}; " + "; ".join(self.describe()))

    def statement(self) -> str:
        return (f"CALL dp_synthesize({self.t.qualified}, epsilon => {self.epsilon}, delta => {self.delta}"
                + (f", rows => {self.rows}" if self.rows else "") + ")")

    def charge(self, dataset: str, epsilon: Decimal, delta: Decimal, statement: str) -> int:
        ledger_id = ledger.charge(self.role, dataset, epsilon, delta, statement,
                                  "synthesis: MST (Gaussian marginals, exponential selection) + DP counts "
                                  "(Laplace; the row count Gaussian in zCDP when nothing is discovered)",
                                  self.t.data_version, f"synthesis:{uuid.uuid4().hex}")
        self.phase(f"charged epsilon {epsilon}, delta {delta} to dataset {dataset} (ledger id {ledger_id})")
        return ledger_id

    def dry_run_notices(self):
        e_disc, d_disc, e_model, d_model = self.costs()
        remaining = catalog.remaining_budget(self.role, self.t.dataset)
        left = f"epsilon {remaining[0]}, delta {remaining[1]}" if remaining else "no budget"
        self.notice(f"dry run: would charge epsilon {self.epsilon}, delta {self.delta} to dataset "
                    f"{self.t.dataset}; remaining: {left}")
        sensitivity = self.t.max_rows if self.t.unit or self.t.path else 1
        need, sd, error, cells = self.useful_rows(float(e_model), float(d_model), sensitivity)
        self.notice(f"dry run: the row count is a DP count (expected error {error:.3g} rows); marginal cells "
                    f"get noise sd {sd:.3g}; under about {need} rows the widest column ({cells} cells) comes out "
                    f"with a 1-way TVD over 0.05: too small to be useful at epsilon {self.epsilon}")

    def work(self, ledger_id: int):
        """Everything after the charge: read, measure, model, sample, write (one transaction)."""
        e_disc, d_disc, e_model, d_model = self.costs()
        # no cast or domain CHECK of another role added since the plan (before the source is read)
        trust.require_no_column_code(self.t.relid, self.t.qualified, "synthesized")
        db.execute("SELECT pg_catalog.set_config('track_counts', 'off', true)")
        if db.execute("SELECT dp_internal.is_citus_table($1) AS c", [self.t.relid], ["oid"])[0]["c"]:
            # Citus: the copy (a local table on the coordinator) and its schema are written in
            # this transaction after distributed reads, which Citus allows over one connection
            # per node only
            db.execute("SELECT pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true)")
        extra = []
        if self.parent:
            # the fan-out first (read from the tables), then the child's rows: a uniform sample of at
            # most tau per unit, tau from the noisy fan-outs (relational.sample_size)
            e_fan = float(self.epsilon) * FANOUT_SHARE
            e_model -= Decimal(str(e_fan))
            relational.measure_fanout(self, e_fan)
            self.unit_rows = relational.unit_rows(self)
            tau = self.tau = relational.sample_size(self.unit_rows, self.t.max_rows)
            sensitivity = self._snapshot(tau)
            self.phase(f"children's marginals measured over a uniform sample of at most {tau} rows per unit "
                       f"(sensitivity {tau}; max_rows_per_unit {self.t.max_rows})")
            extra = relational.join_parent(self)
        else:
            sensitivity = self._snapshot()
        counts = self._discover(float(e_disc), float(d_disc), sensitivity)
        for link in self.links:
            if link.get("pending"):             # a parent written earlier in this call
                link["values"] = _key_values(link["target"], link["refcol"])
                self.t.column(link["column"]).choices = link["values"] or [None]
        skip = relational.anchored(self)
        modelled = [c for c in self.t.columns if c.kind != "identifier" and c.name not in skip]
        modelled += [offset for _, _, offset in getattr(self, "anchors", [])] + extra
        self.modelled, self.counts = modelled, counts
        self._warn_small(counts["total"], float(e_model), float(d_model), sensitivity)
        self.plan = self._model(modelled, float(e_model), float(d_model), sensitivity)
        n = int(self.rows or counts["total"])
        if self.parent and not self.rows:
            n = relational.child_rows(self)
        if self.row_cap is not None and n > self.row_cap:
            self.notice(f"writing {self.row_cap} rows instead of {n}: {self.row_cap_reason}")
            n = self.row_cap
        written = self._write(self._sample(n), n, ledger_id)
        for name in (SRC, CODES, COMPRESSED, write.STAGE):
            _drop_temp(name)
        self.phase(f"wrote {written} rows to {db.quote_ident(self.schema)}.{db.quote_ident(self.t.name)}")

    def _snapshot(self, tau: int | None = None) -> int:
        """The rows measured: every row, or at most max_rows per privacy unit (a child: a uniform
        sample of at most tau of each unit's rows, chosen by random() in each unit's own rows, so
        that a unit still moves at most tau rows).  Returns the sensitivity."""
        bound = int(tau) if tau is not None else self.t.max_rows
        pick = " ORDER BY random()" if tau is not None else ""
        _drop_temp(SRC)
        if self.t.path:
            # the unit is found along the path of foreign keys (rows whose path ends nowhere have none)
            joins, alias = [], "s"
            for i, step in enumerate(self.t.path):
                ref = db.execute("SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS q FROM pg_catalog.pg_class c "
                                 "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
                                 [step["ref"]], ["oid"])[0]["q"]
                on = " AND ".join(f"{alias}.{db.quote_ident(a)} = j{i}.{db.quote_ident(b)}"
                                  for a, b in zip(step["cols"], step["refcols"]))
                joins.append(f"JOIN {ref} j{i} ON {on}")
                alias = f"j{i}"
            unit = f"{alias}.{db.quote_ident(self.t.path_unit)}"
            db.execute(f"CREATE TEMP TABLE {SRC} ON COMMIT DROP AS SELECT * FROM (SELECT s.*, "
                       f"row_number() OVER (PARTITION BY {unit}{pick}) AS pg_dp_rn FROM {self.t.qualified} s "
                       + " ".join(joins) + f") b WHERE pg_dp_rn <= {bound}")
            self.src = SRC
            return bound
        if self.t.unit:
            u = db.quote_ident(self.t.unit)
            db.execute(f"CREATE TEMP TABLE {SRC} ON COMMIT DROP AS SELECT * FROM (SELECT s.*, "
                       f"row_number() OVER (PARTITION BY s.{u}{pick}) AS pg_dp_rn FROM {self.t.qualified} s) b "
                       f"WHERE pg_dp_rn <= {bound}")
            self.src = SRC
            return bound
        self.src = self.t.qualified
        return 1

    # ---------------------------------------------------------- discovery
    def _discover(self, epsilon: float, delta: float, sensitivity: int) -> dict:
        """Noisy row count, bounds, frequent values, then distinct counts of regenerated columns."""
        e_count = float(self.epsilon * COUNT_SHARE)
        rest = max(0.0, epsilon - e_count)
        values = rest * VALUES_PART if self.t.needs_values else 0.0
        share = (rest - values) / (1 + bool(self.t.needs_bounds))
        total = db.execute(f"SELECT count(*) AS n FROM {self.src}")[0]["n"]
        # rows (at most max_rows per unit: sensitivity max_rows); the units are counted with
        # the other regenerated columns (sensitivity 1), so rows per unit = rows / units
        rho = self.count_rho()
        if rho is not None:         # composed with the model in zCDP (its rho is taken from the model's)
            noisy = mechanisms.gaussian_counts([total], mechanisms.gaussian_scale(sensitivity, rho))[0]
            counts = {"total": max(1, int(round(noisy)))}
            self.phase(f"counted rows (DP, expected error {self.count_error(sensitivity):.3g})")
            return counts
        counts = {"total": max(1, mechanisms.laplace_integer(total, sensitivity, e_count))}
        self.phase(f"counted rows (DP, expected error {self.count_error(sensitivity):.3g})")
        if not rest:
            return counts
        if self.t.needs_bounds:
            self._bounds(share, sensitivity)
        if self.t.needs_values:
            self._values(values, delta, sensitivity, counts["total"])
        counts.update(self._distinct(share, sensitivity))
        return counts

    def _distinct(self, epsilon: float, sensitivity: int) -> dict:
        """Noisy numbers of distinct values of the regenerated (non-key) columns."""
        names = [c.name for c in self.t.columns if c.kind == "identifier" and c.name not in self.t.keys
                 and not c.choices]
        if not names:
            return {}
        exact = db.execute("SELECT " + ", ".join(f"count(DISTINCT {db.quote_ident(n)}) AS d{i}"
                                                 for i, n in enumerate(names)) + f" FROM {self.src}")[0]
        eps = epsilon / len(names)
        out = {n: max(1, mechanisms.laplace_integer(exact[f"d{i}"], 1 if n == self.t.unit else sensitivity, eps))
               for i, n in enumerate(names)}
        self.phase(f"counted distinct values of {len(names)} regenerated column(s)")
        return out

    def _bounds(self, epsilon: float, sensitivity: int):
        eps = epsilon / len(self.t.needs_bounds)
        scale = mechanisms.integer_laplace_scale(sensitivity, eps)
        # P(discrete Laplace noise >= t) <= exp(-t / scale): an empty bucket next to the data
        # passes `near` with probability <= BOUNDS_NEAR_P, any of them passes `far` with <= BOUNDS_FAR_P
        near = scale * math.log(1 / BOUNDS_NEAR_P)
        far = scale * math.log(len(dom.all_buckets()) / BOUNDS_FAR_P)
        for name in self.t.needs_bounds:
            col = self.t.column(name)
            u = dom.value_sql(db.quote_ident(name), col.fam)
            exact = {r["b"]: r["n"] for r in db.execute(
                f"SELECT {dom.bucket_sql(u)} AS b, count(*) AS n FROM {self.src} WHERE {db.quote_ident(name)} IS NOT NULL "
                "GROUP BY 1")}
            noisy = dict(zip(dom.all_buckets(), mechanisms.integer_laplace_noise(scale, len(dom.all_buckets()))))
            noisy = {b: exact.get(b, 0) + v for b, v in noisy.items()}
            found = dom.bounds_from_buckets(noisy, near, far)
            # without any: a child date's offset keeps what its declared bounds allow
            col.lower, col.upper = found if found else (col.lower, col.upper) if col.upper > col.lower \
                else fallback_bounds(col.fam)
            low, high = dom.type_range(col.sql_type, col.fam)
            col.lower, col.upper = max(col.lower, low), min(col.upper, high)
            if col.fam in ("integer", "date"):
                col.lower, col.upper = math.floor(col.lower), math.ceil(col.upper)
            col.source = "DP bounds"
            if not found:
                self.notice(f"column {name}: too few values to estimate bounds with DP; using "
                            f"[{col.to_text(np.array([col.lower]))[0]}, {col.to_text(np.array([col.upper]))[0]}]",
                            hint=f"Declare bounds: dp.set_bounds('{self.t.qualified}', '{name}', lower, upper).")
        self.phase(f"estimated bounds of {len(self.t.needs_bounds)} column(s)")

    def _values(self, epsilon: float, delta: float, sensitivity: int, total: int):
        names = self.t.needs_values
        counts = {}
        for i, name in enumerate(names):
            for r in db.execute(f"SELECT {db.quote_ident(name)}::text AS v, count(*) AS n FROM {self.src} "
                                f"WHERE {db.quote_ident(name)} IS NOT NULL GROUP BY 1"):
                counts[f"{i}\x1f{r['v']}"] = r["n"]
        # a unit's (at most `sensitivity`) rows touch up to that many values in each column
        kept = mechanisms.select_partitions(counts, len(names) * sensitivity, sensitivity, epsilon, delta)
        for i, name in enumerate(names):
            col = self.t.column(name)
            found = sorted(((k.split("\x1f", 1)[1], v) for k, v in kept.items() if k.startswith(f"{i}\x1f")),
                           key=lambda kv: -kv[1])
            covered = sum(v for _, v in found)
            if name in self.t.opaque and not found:
                # nothing to draw from, and no made-up text fits the type
                empty = "{}" if self.t.opaque[name] == "A" else None
                col.kind, col.source, col.choices = "identifier", "no values found with DP", [empty]
                self.notice(f"column {name}: no value is frequent enough to release; every synthetic row gets "
                            + ("an empty array" if empty else "NULL"),
                            hint=f"Declare public values: dp.set_public_values('{self.t.qualified}', '{name}', "
                                 "ARRAY[...]).")
            elif found and (covered >= COVERAGE * total or name in self.t.opaque):
                col.kind, col.values, col.other = "categorical", [v for v, _ in found], True
                col.other_weights = [float(v) for _, v in found]
                col.source = "DP partition selection"
            else:
                col.kind, col.source = "identifier", "too many distinct values to model"
                self.notice(f"column {name}: values are too many or too rare to release; "
                            "synthetic values are generated identifiers",
                            hint=f"Declare public values: dp.set_public_values('{self.t.qualified}', '{name}', ARRAY[...]).")
        self.phase(f"found frequent values of {len(names)} column(s)")

    # -------------------------------------------------------------- model
    def _model(self, modelled: list[dom.Column], epsilon: float, delta: float, sensitivity: int):
        if not modelled:
            if keys.histogram_links(self):      # the key histograms take the whole model's rho
                rho = mechanisms.rho_for(epsilon, delta) - (self.count_rho() or 0.0)
                keys.measure(self, keys.rho_share(self, rho, alone=True), sensitivity)
            return None
        _drop_temp(CODES)
        db.execute(f"CREATE TEMP TABLE {CODES} ON COMMIT DROP AS SELECT "
                   + ", ".join(f"{c.encode_sql(db.quote_ident(c.name))} AS c{i}" for i, c in enumerate(modelled))
                   + f" FROM {self.src}")
        self.phase(f"encoded {len(modelled)} column(s)")
        mst.preload(db.check_interrupts)
        index = {c.name: i for i, c in enumerate(modelled)}
        sizes = {c.name: c.size for c in modelled}
        cache: dict = {}
        made: dict = {}

        def measure(cliques, compress=None):
            table, shape = CODES, sizes
            if compress is not None:
                if id(compress) not in made:        # one table per compression (there is one per run)
                    made.clear()
                    made[id(compress)] = _compressed_codes(modelled, index, compress)
                table, shape = made[id(compress)], {a: int(m.max()) + 1 for a, m in compress.items()}
            todo = [c for c in cliques if (c, table) not in cache]
            if todo:
                cache.update({(c, table): v for c, v in _grouping_sets(todo, index, shape, table).items()})
                db.check_interrupts()
            return [cache[(c, table)] for c in cliques]

        required = []
        for d in self.t.dcs:
            attrs = tuple(a for a in d.attributes if a in index)
            if len(attrs) >= 2 and math.prod(sizes[a] for a in attrs) <= 10 ** 5:
                required.append(attrs)
            elif len(attrs) >= 2:
                required += [p for p in zip(attrs, attrs[1:])]
        rho = mechanisms.rho_for(epsilon, delta) - (self.count_rho() or 0.0)
        rho_keys = keys.rho_share(self, rho, alone=False)
        keys.measure(self, rho_keys, sensitivity)
        plan = mst.run(sizes, measure, rho - rho_keys, sensitivity, required=required, progress=self.phase)
        plan.total = float(self.counts["total"])      # the DP row count, not the marginals' sums
        cache.clear()
        self.model = mst.fit(plan, iters=mst.fit_iterations(plan), tick=db.check_interrupts)
        self.phase("fitted the graphical model")
        return plan

    def _sample(self, n: int) -> dict[str, np.ndarray]:
        """n rows of every column but the keys (those are numbered when written)."""
        values, parents = {}, None
        if self.plan is not None:
            def draw(k):
                return mst.sample(self.model, self.plan, k, self.rng, tick=db.check_interrupts)
            if self.parent and n == self.slots.size:
                codes, parents = relational.draw_children(self, draw, n)
            else:
                codes = draw(n)
            for link in self.links:
                found = keys.model_threshold(self, link["column"]) if link.get("in_model") else None
                if found:           # keys with too few rows to tell from noise: uniform among them
                    codes[link["column"]] = keys.spread_rare(codes[link["column"]], *found, self.rng,
                                                             self.t.column(link["column"]).null_code)
            for c in self.modelled:
                values[c.name] = c.decode(codes[c.name], self.rng)
        for c in self.t.columns:
            if c.kind != "identifier" or c.name in self.t.keys:
                continue
            if c.choices:
                values[c.name] = np.array(c.choices, dtype=object)[self.rng.integers(0, len(c.choices), size=n)]
                continue
            groups = [values[d.dependent] for d in self.t.dcs
                      if d.kind == "fd" and d.determinants == (c.name,) and d.dependent in values]
            values[c.name] = identifiers.assign_ids(n, self.counts.get(c.name, n), self.rng, groups)
        for link in keys.histogram_links(self):
            values.update(keys.draw(self, link, n))
        if self.parent:
            relational.attach(self, values, parents, n)
        self.phase(f"sampled {n} rows")
        return values

    def repaired(self, values: dict[str, np.ndarray]):
        if not self.dcs_to_repair:
            return values, np.ones(len(next(iter(values.values()))), dtype=bool)
        domains = {c.name: _repair_domain(c) for c in self.t.columns if _repair_domain(c) is not None}
        fixed, keep, stats = dcmod.repair(values, self.dcs_to_repair, self.rng, domains, tick=db.check_interrupts,
                                          bounds=self._order_bounds())
        self.phase(f"repaired denial constraints: {stats.get('changed_values', 0)} value(s) changed "
                   f"in {stats.get('rounds', 0)} pass(es), no row dropped")
        return fixed, keep

    def _order_bounds(self) -> dict[str, tuple[float, float, float]]:
        """(lower, upper, step) of the numeric columns in an order within a row (see dc.repair)."""
        out = {}
        for d in self.dcs_to_repair:
            if d.kind == "row order":
                for c in (self.t.column(a) for a in d.attributes):
                    step = c.grid_step() or (1e-6 if c.fam == "timestamp" else 0.0)
                    out[c.name] = (c.lower, c.upper, step)
        return out

    def _constraint_capacity(self) -> int | None:
        """Refuse, before anything is charged, denial constraints that no values can meet, and
        a row count over what the unique ones (all EQ) can hold; the most rows they allow."""
        dcs = self.dcs_to_repair
        hint = "Drop it with dp.drop_constraint(id) (ids in dp.denial_constraints)."
        for d in dcs:
            why = dcmod.unsupported(d)
            if why:
                raise DPError(f'denial constraint "{d.text}" cannot be kept without deleting rows: {why}',
                              hint=hint, sqlstate="0A000")
        why = dcmod.conflict(dcs)
        if why:
            raise DPError(f"these denial constraints cannot be kept together: {why}", hint=hint, sqlstate="0A000")
        unknown = set(self.t.needs_bounds) | set(self.t.needs_values)     # found after the charge
        bounds = self._order_bounds()
        for d in (d for d in dcs if d.kind == "row order"):
            low, high = self.t.column(d.key), self.t.column(d.dependent)
            if low.kind != "numeric" or high.kind != "numeric" or not dom.comparable(low.fam, high.fam):
                raise DPError(f'denial constraint "{d.text}" orders {low.name} and {high.name}, which are not both '
                              "numbers, dates or timestamps modelled on the number line", hint=hint, sqlstate="42804")
            if not {low.name, high.name} & unknown and not dcmod.row_order_feasible(d, bounds):
                raise DPError(f'denial constraint "{d.text}" cannot hold in any row: the bounds of {low.name} '
                              f"and {high.name} leave no room for the order", sqlstate="22023",
                              hint="Declare bounds that allow it (dp.set_bounds), or drop the constraint.")
        sizes = {c.name: math.inf if c.name in unknown else _value_count(c) for c in self.t.columns}
        limits = sorted(((cap, d) for d, cap in dcmod.capacity(dcs, sizes)), key=lambda x: x[0])
        self._trial_repair(dcs, unknown, int(min(self.rows or TRIAL_ROWS, limits[0][0] if limits else math.inf,
                                                 TRIAL_ROWS)))
        if not limits or not math.isfinite(limits[0][0]):
            return None
        cap, d = limits[0]
        self.row_cap_reason = (f'denial constraint "{d.text}" allows at most {int(cap)} rows (distinct values of '
                               + ", ".join(dcmod.free_attributes(d, dcs)) + ")")
        if self.rows is not None and self.rows > cap:
            raise DPError(f"{self.rows} rows cannot meet {self.row_cap_reason}",
                          hint=f"Ask for at most {int(cap)} rows, declare larger domains, or drop the constraint.",
                          sqlstate="22023")
        if self.rows is None and cap < MAX_ROWS:
            self.notice(f"at most {int(cap)} rows will be written: {self.row_cap_reason}")
        return int(cap)

    def _trial_repair(self, dcs, unknown: set, n: int):
        """Run the repair on TRIALS tables drawn from the declared domains alone (no data is read):
        a set of constraints that pull the same columns different ways until no pass settles
        is refused here, before the charge, rather than after it."""
        attrs = sorted({a for d in dcs for a in d.attributes})
        if not dcs or n < 2 or set(attrs) & unknown:
            return
        domains = {a: _repair_domain(self.t.column(a)) for a in attrs if _repair_domain(self.t.column(a)) is not None}
        bounds = self._order_bounds()
        for seed in range(TRIALS):          # public inputs only: nothing here is released
            rng = np.random.default_rng(seed)
            values = {}
            for name in attrs:
                c = self.t.column(name)
                if c.kind == "categorical":
                    values[name] = np.array(c.values, dtype=object)[rng.integers(0, len(c.values), n)]
                elif c.kind == "numeric":
                    u = rng.uniform(c.lower, c.upper, n)
                    values[name] = np.round(u) if c.fam in ("integer", "date") else u
                else:
                    values[name] = np.array([f"id{k}" for k in rng.integers(0, n, n)], dtype=object)
            try:
                dcmod.repair(values, dcs, rng, domains, tick=db.check_interrupts, bounds=bounds)
            except DPError as e:
                raise DPError(f"these denial constraints cannot be met together: {e.message}",
                              hint="A trial on random rows of the declared domains did not settle; drop some of "
                                   "them (dp.drop_constraint) or ask for fewer rows.", sqlstate="23514") from None

    # -------------------------------------------------------------- write
    @property
    def dcs_to_repair(self) -> list:
        """Denial constraints over sampled columns (keys are distinct: an EQ on one never holds)."""
        return [d for d in self.t.dcs if not set(d.attributes) & set(self.t.keys)]

    def _text(self, values: dict[str, np.ndarray], rows: np.ndarray, first: int) -> dict[str, list]:
        """Text of the given rows, keys numbered from `first`."""
        out = {}
        for c in self.t.columns:
            if c.name in self.t.keys:
                out[c.name] = identifiers.as_text(identifiers.key_values(rows.size, c.fam, first), c.fam, c.name)
            elif c.kind == "identifier" and c.choices:
                out[c.name] = list(values[c.name][rows])
            elif c.kind == "identifier":
                out[c.name] = identifiers.as_text(values[c.name][rows], c.fam, c.name)
            else:
                out[c.name] = c.to_text(values[c.name][rows])
        for link in self.links:
            if link["kind"] == "self":
                ref = self.t.column(link["refcol"])
                spare = identifiers.as_text(identifiers.key_values(1, ref.fam, first + rows.size), ref.fam, ref.name)
                out[link["column"]] = keys.neighbour_keys([v is not None for v in values[link["column"]][rows]],
                                                          out[link["refcol"]], spare[0])
        return out

    def _write(self, values: dict[str, np.ndarray], n: int, ledger_id: int) -> int:
        """Stage, drop rows breaking CHECK/UNIQUE (sampling more if needed), then swap in (pg_dp.synth.write)."""
        w = self.destination()
        for _ in range(MAX_ROUNDS):
            fixed, keep = self.repaired(values)
            staged = write.stage(w, np.flatnonzero(keep), lambda rows, first: self._text(fixed, rows, first))
            bad = write.misfits(w)
            good = staged - len(bad)
            if good >= n or not (self.t.checks or self.t.uniques or self.t.domains):
                break
            more = min(10 * n, int((n - good) * 1.5) + 10)
            self.phase(f"{len(bad)} row(s) broke CHECK/UNIQUE constraints; sampling {more} more")
            extra = self._sample(more)
            values = {k: np.concatenate([v[keep], extra[k]]) for k, v in fixed.items()}
        if bad:
            self.notice(f"dropped {len(bad)} sampled row(s) that broke CHECK or UNIQUE constraints")
        provenance = {"source": self.t.qualified, "epsilon": str(self.epsilon), "delta": str(self.delta),
                      "method": "MST (select-measure-generate), mbi graphical model",
                      "ledger_id": ledger_id, "data_version": self.t.data_version,
                      "denial_constraints": [d.text for d in self.t.dcs],
                      "regenerated": [c.name for c in self.t.columns if c.kind == "identifier"]}
        return write.swap(w, bad, n, provenance,
                          lambda table, execute: keys.fill_self_references(self, table, execute))

    def destination(self) -> write.TableWrite:
        """What pg_dp.synth.write needs to write this table's copy."""
        return write.TableWrite(
            source=self.t.relid, source_name=self.t.qualified, schema=self.schema, name=self.t.name,
            columns=[(c.name, c.sql_type) for c in self.t.columns], caller=self.caller,
            domains=dict(self.t.domains), checks=list(self.t.checks), uniques=[list(u) for u in self.t.uniques],
            serials=list(self.t.serials), integers={c.name for c in self.t.columns if c.fam == "integer"},
            identity_always=self.t.identity_always,
            foreign_keys=[write.ForeignKey(k["name"], list(k.get("cols", [k["column"]])),
                                           list(k.get("refcols", [k["refcol"]])), k["target"]) for k in self.links],
            vocabularies=[k["ref"] for k in self.links if k["kind"] == "vocabulary"])

    # ------------------------------------------------------------ progress
    def phase(self, message: str):
        self.notice(f"dp_synthesize {self.t.name}: {message} ({time.monotonic() - self.started:.1f} s)")

    def notice(self, message: str, hint: str | None = None):
        db.notice(message, hint)


def _key_values(table: str, column: str, limit: int | None = None) -> list[str]:
    """The distinct non-NULL values of a key column of a table (as text, sorted)."""
    q = db.quote_ident(column)
    return [r["v"] for r in db.execute(f"SELECT DISTINCT {q}::text AS v FROM {table} WHERE {q} IS NOT NULL ORDER BY 1"
                                       + (f" LIMIT {int(limit)}" if limit is not None else ""))]


def _ref_info(relid: int) -> dict:
    """Name of a referenced table, and whether it is protected or declared public."""
    return db.execute(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS q, c.relname, "
        "EXISTS (SELECT 1 FROM dp_internal.protected_tables p WHERE p.relid = c.oid) AS protected, "
        "EXISTS (SELECT 1 FROM dp_internal.public_tables p WHERE p.relid = c.oid) AS declared "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
        [relid], ["oid"])[0]


def _drop_temp(name: str):
    write.drop_temp(name)


def _compressed_codes(modelled, index, compress) -> str:
    """A TEMP table of the compressed codes (mapped in SQL, so that GROUP BY returns at most as
    many groups as the compressed marginal has cells, never one per original combination)."""
    _drop_temp(COMPRESSED)
    names = [c.name for c in modelled]
    db.execute(f"CREATE TEMP TABLE {COMPRESSED} ON COMMIT DROP AS SELECT "
               + ", ".join(f"(${k + 1}::int[])[c{index[n]} + 1] AS c{index[n]}" for k, n in enumerate(names))
               + f" FROM {CODES}", [compress[n].tolist() for n in names], ["int[]"] * len(names))
    return COMPRESSED


def _grouping_sets(cliques, index, sizes, table=None) -> dict:
    """Exact counts of several marginals in one scan of the codes table."""
    used = sorted({index[a] for c in cliques for a in c})
    sets = ", ".join("(" + ", ".join(f"c{index[a]}" for a in c) + ")" for c in cliques)
    rows = db.execute_tuples(
        f"SELECT count(*) AS c0, " + ", ".join(f"c{i} AS c{k + 1}" for k, i in enumerate(used))
        + f" FROM {table or CODES} GROUP BY GROUPING SETS ({sets})", len(used) + 1)
    pos = {i: k + 1 for k, i in enumerate(used)}
    out = {c: np.zeros([sizes[a] for a in c], dtype=np.int64) for c in cliques}
    by_pattern = {frozenset(index[a] for a in c): c for c in cliques}
    for row in rows:
        present = frozenset(i for i in used if row[pos[i]] is not None)
        c = by_pattern[present]
        out[c][tuple(row[pos[index[a]]] for a in c)] += row[0]
    return out


def _value_count(c: dom.Column) -> float:
    """How many values a column can take in a copy (math.inf: unbounded for a unique DC)."""
    if c.kind == "categorical":
        return float(len(c.values))
    if c.kind == "numeric" and c.fam in ("integer", "date"):
        return c.upper - c.lower + 1
    if c.kind == "numeric" and c.fam == "numeric" and dom.numeric_scale(c.sql_type) is not None:
        return (c.upper - c.lower) * 10.0 ** dom.numeric_scale(c.sql_type) + 1
    if c.kind == "identifier" and c.choices:
        return float(len(c.choices))
    return math.inf


def _repair_domain(c: dom.Column):
    """The values the repair may give a column besides the sampled ones (decoded form)."""
    if c.kind == "categorical":
        return np.array(c.values, dtype=object)
    if c.kind == "numeric" and c.exact:
        return c.lower + np.arange(c.value_codes, dtype=np.float64)
    return None


def _positive(value, name) -> Decimal:
    if value is None or not math.isfinite(float(value)) or float(value) <= 0:
        raise DPError(f"{name} must be a finite number greater than zero",
                      hint="e.g. epsilon => 1.0")
    return Decimal(str(float(value)))    # 5.0, whether it came as 5 (JSON) or 5.0


def _load(relid: int) -> Target:
    r = db.execute(
        "SELECT n.nspname, c.relname, p.dataset, p.unit_column, "
        "d.data_version + dp_internal.distributed_writes(p.dataset) AS data_version, p.unit_path::text AS unit_path, "
        "coalesce(p.max_rows_per_unit, d.max_rows_per_unit) AS max_rows_per_unit, d.privacy_unit "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN dp_internal.protected_tables p ON p.relid = c.oid "
        "LEFT JOIN dp_internal.datasets d ON d.name = p.dataset WHERE c.oid = $1", [relid], ["oid"])[0]
    qualified = f"{db.quote_ident(r['nspname'])}.{db.quote_ident(r['relname'])}"
    if r["dataset"] is None:
        raise DPError(f"table {qualified} is not protected by pg_dp",
                      hint=f"Protect it first: SELECT dp.protect('{qualified}'); then grant a budget on its dataset.",
                      sqlstate="42P01")
    t = Target(relid, r["nspname"], r["relname"], qualified, r["dataset"], r["unit_column"],
               int(r["max_rows_per_unit"]), int(r["data_version"]))
    if r["unit_path"]:
        t.path, t.path_unit = json.loads(r["unit_path"]), r["privacy_unit"]
    for k in db.execute(
            "SELECT contype, pg_catalog.pg_get_constraintdef(oid) AS def, "
            "ARRAY(SELECT a.attname::text FROM unnest(conkey) WITH ORDINALITY k(n, o) JOIN pg_catalog.pg_attribute a "
            "ON a.attrelid = conrelid AND a.attnum = k.n ORDER BY k.o) AS cols, "
            "ARRAY(SELECT a.attname::text FROM unnest(confkey) WITH ORDINALITY k(n, o) JOIN pg_catalog.pg_attribute a "
            "ON a.attrelid = confrelid AND a.attnum = k.n ORDER BY k.o) AS refcols, confrelid::int8 AS ref, conname "
            "FROM pg_catalog.pg_constraint WHERE conrelid = $1 ORDER BY conname", [relid], ["oid"]):
        if k["contype"] in ("p", "u") and len(k["cols"]) == 1:
            t.keys.append(k["cols"][0])
        elif k["contype"] in ("p", "u"):
            t.uniques.append(list(k["cols"]))
        elif k["contype"] == "c":
            t.checks.append(k["def"][len("CHECK "):] if k["def"].startswith("CHECK ") else k["def"])
        elif k["contype"] == "f":
            t.foreign_keys.append(k)
        elif k["contype"] == "x":
            t.refused.append(f"exclusion constraint {k['conname']}: synthetic rows cannot be made to meet it")
    # unique indexes that back no constraint are met like UNIQUE constraints
    for i in db.execute(
            "SELECT i.indexrelid::regclass::text AS name, i.indexprs IS NOT NULL OR i.indpred IS NOT NULL AS complex, "
            "ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) "
            "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) AS cols "
            "FROM pg_catalog.pg_index i WHERE i.indrelid = $1 AND i.indisunique AND NOT EXISTS "
            "(SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid) "
            "ORDER BY 1", [relid], ["oid"]):
        if i["complex"]:
            t.refused.append(f"unique index {i['name']} on an expression or with a WHERE clause: synthetic rows "
                             "cannot be made to meet it")
        elif len(i["cols"]) == 1 and i["cols"][0] not in t.keys:
            t.keys.append(i["cols"][0])
        elif len(i["cols"]) > 1 and list(i["cols"]) not in t.uniques:
            t.uniques.append(list(i["cols"]))
    for c in db.execute(
            "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, "
            "pg_catalog.format_type(CASE WHEN t.typtype = 'd' THEN ub.oid ELSE a.atttypid END, NULL) AS base, "
            "pg_catalog.format_type(ub.oid, ub.mod) AS domain_base, "
            "CASE WHEN t.typtype = 'd' THEN b.typcategory ELSE t.typcategory END AS category, "
            "CASE WHEN t.typtype = 'd' THEN b.typtype ELSE t.typtype END AS base_typtype, "
            "t.typtype, a.attnotnull OR coalesce(ub.nn, false) AS attnotnull, a.attgenerated <> '' AS generated, "
            "a.attidentity, m.lower_bound, m.upper_bound, m.public_values, m.values_source, "
            "ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e WHERE e.enumtypid = "
            "CASE WHEN t.typtype = 'd' THEN ub.oid ELSE a.atttypid END ORDER BY e.enumsortorder) AS labels, "
            "EXISTS (SELECT 1 FROM pg_catalog.pg_attrdef d JOIN pg_catalog.pg_depend p "
            "ON p.classid = 'pg_catalog.pg_attrdef'::regclass AND p.objid = d.oid "
            "AND p.refclassid = 'pg_catalog.pg_class'::regclass "
            "JOIN pg_catalog.pg_class s ON s.oid = p.refobjid AND s.relkind = 'S' "
            "WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum) AS serial "
            "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
            "LEFT JOIN LATERAL (WITH RECURSIVE ch(oid, mod, depth, nn) AS (SELECT t.typbasetype, t.typtypmod, 1, "
            "t.typnotnull WHERE t.typtype = 'd' UNION ALL SELECT y.typbasetype, y.typtypmod, ch.depth + 1, y.typnotnull "
            "FROM ch JOIN pg_catalog.pg_type y ON y.oid = ch.oid WHERE y.typtype = 'd' AND ch.depth < 32) "
            "SELECT ch.oid, ch.mod, bool_or(ch.nn) OVER () AS nn FROM ch ORDER BY ch.depth DESC LIMIT 1) ub ON true "
            # a domain's last base, and whether any domain of the chain is NOT NULL
            "LEFT JOIN pg_catalog.pg_type b ON b.oid = ub.oid "
            "LEFT JOIN dp_internal.columns m ON m.relid = a.attrelid AND m.attname = a.attname "
            "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", [relid], ["oid"]):
        if c["generated"]:
            t.generated.append(c["attname"])
            continue
        if c["serial"]:
            t.serials.append(c["attname"])
        if c["attidentity"] == "a":
            t.identity_always = True
        t.columns.append(_classify(t, c))
    for k in relational.partition_foreign_keys(relid, t.foreign_keys):
        db.notice(f"foreign key {k['conname']} is declared on {k['declared_on']}, a partition or child of "
                  f"{qualified}: it is kept for the whole synthetic table")
        t.foreign_keys.append(k)
    t.dcs = [dcmod.parse(r["dc"], [c.name for c in t.columns]) for r in db.execute(
        "SELECT dc FROM dp_internal.denial_constraints WHERE relid = $1 ORDER BY id", [relid], ["oid"])]
    return t


def _classify(t: Target, c) -> dom.Column:
    fam = dom.family(c["base"], c["base_typtype"])
    sql_type = c["type"]
    if c["typtype"] == "d":
        # staged as the base type; the domain's CHECKs are tested on the staged rows (rows that
        # break them are replaced like rows breaking a table CHECK), never on the copy
        sql_type = c["domain_base"]
        t.domains[c["attname"]] = c["type"]
    col = dom.Column(c["attname"], sql_type, fam, not c["attnotnull"], "identifier")
    opaque = fam == "text" and c["category"] != "S"        # arrays, json, inet, ...: no made-up text fits
    if c["attname"] in t.keys and fam not in ("integer", "numeric", "text", "uuid") or \
            c["attname"] in t.keys and opaque:
        t.refused.append(f"column {c['attname']} ({c['type']}) is a key, and keys are regenerated as numbers, "
                         "text or uuids only")
    if c["attname"] == t.unit:
        col.source = "privacy unit"
        if opaque:
            t.refused.append(f"privacy unit column {c['attname']} ({c['type']}) cannot be regenerated")
    elif c["attname"] in t.keys:
        col.source = "key"
    elif c["public_values"]:
        col.kind, col.values, col.source = "categorical", list(c["public_values"]), c["values_source"] or "declared"
    elif fam == "enum" and c["labels"]:
        col.kind, col.values, col.source = "categorical", list(c["labels"]), "enum"
    elif opaque:
        # modelled over the values found with DP (whatever share of rows they cover); when none is
        # found: an empty array for arrays, NULL when nullable; else it cannot be made up at all
        col.kind, col.source = "categorical", "opaque"
        t.needs_values.append(c["attname"])
        t.opaque[c["attname"]] = c["category"]
        if c["category"] != "A" and c["attnotnull"]:
            t.refused.append(f"column {c['attname']} ({c['type']}) is NOT NULL and has no public values: its "
                             "values cannot be made up when DP finds none")
    elif fam == "boolean":
        col.kind, col.values, col.source = "categorical", ["false", "true"], "boolean"
    elif fam in ("integer", "float", "numeric", "date", "timestamp"):
        col.kind = "numeric"
        if c["lower_bound"] is not None and c["upper_bound"] is not None:
            low, high = dom.type_range(c["type"], fam)
            col.lower = min(max(float(c["lower_bound"]), low), high - 1)
            col.upper = min(float(c["upper_bound"]), high)
            if col.upper < col.lower or (col.upper == col.lower and fam not in ("integer", "date")):
                col.upper = col.lower + 1       # bins need a width (whole numbers and dates: one exact value)
            col.source = "declared bounds"
        else:
            t.needs_bounds.append(c["attname"])
    elif fam == "uuid":
        col.source = "uuid"
    else:
        col.kind = "categorical"
        t.needs_values.append(c["attname"])
    return col


MAX_ROWS = 100_000_000


def fallback_bounds(fam: str) -> tuple[float, float]:
    """Bounds when DP finds none (too few rows): fixed, never from the data; dates and
    timestamps from 2000-01-01 to today rather than a day of 2000."""
    if fam in ("date", "timestamp"):
        days = float((dt.date.today() - dom.EPOCH).days)
        return (0.0, days) if fam == "date" else (0.0, days * 86400.0)
    return 0.0, 1.0


def synthesize_steps(source=None, epsilon=None, delta=None, target_schema=None, rows=None, dry_run=False,
                     sources=None, schema=None, dataset=None):
    """The executor's handler of CALL dp_synthesize: phases (see pg_dp.executor). One table
    (source, an oid), or several in one call: every protected table of a schema, of a
    dataset, or the oids in sources (pg_dp.synth.relational)."""
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
    if sources is not None and not (isinstance(sources, list) and all(isinstance(r, int) for r in sources)):
        raise DPError("malformed pg_dp request", sqlstate="22023")
    relids = relational.resolve(schema, dataset, sources)
    label = f"schema {schema}" if schema is not None else f"dataset {dataset}" if dataset is not None else \
        "ARRAY[" + ", ".join(relational._name(r) for r in relids) + "]"

    def make(relid, e, d, siblings):
        return Run(str(relid), e, d, target_schema, None, dry_run, siblings)

    yield from relational.synthesize_many(make, relids, epsilon, delta, dry_run, label, schema)
    return ""
