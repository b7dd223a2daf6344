"""dp.evaluate_synthetic: how close a synthetic table is to its source (DBA only: reads raw data)."""

from __future__ import annotations

import json

import numpy as np

from ..core import catalog, db, trust
from ..core.encode import json_safe
from ..core.errors import DPError
from . import dc as dcmod
from . import evaluate as ev

MAX_ROWS = 200_000      # rows read from each table (a uniform sample beyond that)
NUMERIC = ("smallint", "integer", "bigint", "real", "double precision", "numeric")
TEMPORAL = ("date", "timestamp without time zone", "timestamp with time zone")


def _columns(relid: int) -> dict[str, str]:
    rows = db.execute(
        "SELECT a.attname, pg_catalog.format_type(a.atttypid, NULL) AS t FROM pg_catalog.pg_attribute a "
        "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", [relid], ["oid"])
    return {r["attname"]: ("numeric" if r["t"] in NUMERIC else "temporal" if r["t"] in TEMPORAL else "categorical")
            for r in rows}


def _read(relid: int, names: list[str]) -> dict[str, np.ndarray]:
    table = db.execute("SELECT $1::regclass::text AS t", [relid], ["oid"])[0]["t"]
    n = db.execute(f"SELECT count(*) AS n FROM {table}")[0]["n"]
    sample = f" TABLESAMPLE BERNOULLI ({100.0 * MAX_ROWS / n}) REPEATABLE (0)" if n > MAX_ROWS else ""
    cols = ", ".join(f"{db.quote_ident(c)} AS c{i}" for i, c in enumerate(names))
    rows = db.execute_tuples(f"SELECT {cols} FROM {table}{sample}", len(names))
    return {c: np.array([r[i] for r in rows], dtype=object) for i, c in enumerate(names)}


def _numbers(values: np.ndarray) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def evaluate(source, synthetic=None, targets=None):
    if not catalog.is_admin(catalog.outer_role()):
        raise DPError("permission denied to evaluate a synthetic table",
                      hint="Only a pg_dp administrator can: the evaluation reads the raw data.", sqlstate="42501")
    src = db.regclass_oid(source)
    if synthetic is None:
        found = db.execute("SELECT relid FROM dp_internal.synthetic_tables WHERE source = $1 "
                           "ORDER BY created_at DESC LIMIT 1", [src], ["oid"])
        if not found:
            raise DPError(f"no synthetic copy of {source} was found",
                          hint="Run CALL dp.dp_synthesize(...) first, or name the synthetic table.", sqlstate="42P01")
        syn = int(found[0]["relid"])
    else:
        syn = db.regclass_oid(synthetic)
    for relid in (src, syn):      # read as the extension owner: no other role's casts or domain CHECKs
        trust.require_no_column_code(relid, db.execute("SELECT $1::regclass::text AS t", [relid], ["oid"])[0]["t"],
                                     "evaluated")
    kinds = _columns(src)
    missing = [c for c in kinds if c not in _columns(syn)]
    if missing:
        raise DPError(f"the synthetic table lacks column(s) {', '.join(missing)}",
                      hint="Compare a table with its own synthetic copy.", sqlstate="42703")
    names = list(kinds)
    real, synth = _read(src, names), _read(syn, names)
    # regenerated columns (keys, units, identifiers) share no values with the source by design
    regenerated = db.execute("SELECT coalesce(provenance->'regenerated', '[]') AS r FROM dp_internal.synthetic_tables "
                             "WHERE relid = $1", [syn], ["oid"])
    skip = set(json.loads(regenerated[0]["r"])) if regenerated else set()
    fidelity = [c for c in names if c not in skip]
    scored = ({c: real[c] for c in fidelity}, {c: synth[c] for c in fidelity}, {c: kinds[c] for c in fidelity})
    out = []
    scores = ev.average_tvd(*scored)
    base = ev.independent_baseline(scored[0], scored[2], np.random.default_rng(0))
    note = {"columns": len(fidelity), "regenerated_columns_left_out": sorted(skip)}
    out.append(("tvd_1way", scores["tvd_1way"], {"independent_baseline": base["tvd_1way"], **note}))
    out.append(("tvd_2way", scores["tvd_2way"], {"independent_baseline": base["tvd_2way"], **note,
                                                  "worst": [[list(p), t] for p, t in scores["worst_2way"]]}))
    dcs = [dcmod.parse(r["dc"], names) for r in db.execute(
        "SELECT dc FROM dp_internal.denial_constraints WHERE relid = $1 ORDER BY id", [src], ["oid"])]
    for d in dcs:
        cols = {}
        for table, data in (("real", real), ("synthetic", synth)):
            view = {a: (_numbers(data[a]) if kinds[a] == "numeric" else data[a]) for a in d.attributes}
            cols[table] = dcmod.count_violations(view, d)
        out.append(("dc_violations", float(cols["synthetic"]), {"dc": d.text, "real": cols["real"], "synthetic": cols["synthetic"],
                                                                  "rows": len(next(iter(synth.values())))}))
    for r in ev.ml_utility(*scored, targets=list(targets) if targets else None):
        out.append((f"ml_accuracy:{r['target']}", r["accuracy_synthetic"], r))
    return [(m, None if v is None else float(v), json.dumps(d, default=str)) for m, v, d in out]


def evaluate_reply(source, synthetic=None, targets=None):
    """The executor's handler of dp.evaluate_synthetic (source and synthetic are oids)."""
    def name(oid):
        return db.execute("SELECT $1::oid::regclass::text AS n", [int(oid)], ["int8"])[0]["n"]

    rows = evaluate(name(source), None if synthetic is None else name(synthetic), targets)
    return json.dumps(json_safe([{"metric": m, "value": v, "detail": json.loads(d)} for m, v, d in rows]))

