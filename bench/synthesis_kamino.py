#!/usr/bin/python3
"""Ablations on Kamino's Adult (ML utility), without a server.

    PYTHONPATH=python_udfs /usr/bin/python3 bench/synthesis_kamino.py --runs 3 --options '{"extra": 21}'

The engine (pg_dp.synth.methods: MST select and measure, mbi fit, sample) from this checkout on
../shared/data/kamino/adult/adult.csv, encoded as dp_synthesize encodes it when the
bench declares its bounds and category lists (bench/synthesis.py --cases adult): the
same pg_dp.synth.domain columns (integer ranges of up to 128 values one code each, 32
bins otherwise, NULL a code of its own), counted by numpy in place of SQL GROUP BY, the
denial constraints' columns as required cliques.  The rows are decoded as the server
decodes them and scored with pg_dp.synth.evaluate (what dp.evaluate_synthetic runs):
ML utility for income (train on synthetic, test on the held-out 30% of real rows) and
the average 1-/2-way TVD over 16 bins.  The constraint repair is not run (two DCs; the
server's figures in bench/RESULTS.md include it).  --options as in synthesis_options.py.
"""
import csv
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python_udfs"))
sys.path.insert(0, os.path.join(ROOT, "test", "support"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import numpy as np  # noqa: E402

from pg_dp.synth import domain as dom, evaluate as ev  # noqa: E402
from pg_dp.synth.methods import base, mst, pgm  # noqa: E402
from datasets import ADULT_NUMERIC_BOUNDS  # noqa: E402
from synthesis_options import arguments, configure, counter  # noqa: E402

TEXT_NULLABLE = {"workclass", "occupation", "native_country"}


def load(path):
    with open(path) as f:
        reader = csv.reader(f)
        header = [h.replace("-", "_") for h in next(reader)]
        rows = list(reader)
    table = {}
    for j, name in enumerate(header):
        raw = [r[j] for r in rows]
        if name in ADULT_NUMERIC_BOUNDS:
            table[name] = np.array([float(v) for v in raw])
        else:
            table[name] = np.array([v if v != "" else None for v in raw], dtype=object)
    return header, table


def columns(header, table):
    out = []
    for name in header:
        if name in ADULT_NUMERIC_BOUNDS:
            lo, hi = ADULT_NUMERIC_BOUNDS[name]
            out.append(dom.Column(name, "integer", "integer", False, "numeric", lower=lo, upper=hi,
                                  source="declared bounds"))
        else:
            values = sorted({v for v in table[name] if v is not None})
            out.append(dom.Column(name, "text", "text", name in TEXT_NULLABLE, "categorical", values=values,
                                  source="public values"))
    return out


def encode(c: dom.Column, values: np.ndarray) -> np.ndarray:
    """numpy twin of Column.encode_sql (for these columns: no zero point, no log scale)."""
    if c.kind == "categorical":
        book = {v: k for k, v in enumerate(c.values)}
        return np.array([c.null_code if v is None else book[v] for v in values], dtype=np.int64)
    u = values
    if c.exact:
        return (np.clip(np.round(u), c.lower, c.upper) - c.lower).astype(np.int64)
    width = (c.upper - c.lower) / c.bins
    inner = 1 + np.minimum(c.bins - 1, np.floor((u - c.lower) / width))
    return np.where(u <= c.lower, 0, np.where(u >= c.upper, c.bins + 1, inner)).astype(np.int64)


def main():
    ap = arguments(__doc__)
    ap.add_argument("--seed", type=int, default=None, help="seed of the numpy draws (decode, sampling)")
    args = ap.parse_args()
    path = os.path.join(os.path.dirname(ROOT), "shared", "data", "kamino", "adult", "adult.csv")
    header, table = load(path)
    cols = columns(header, table)
    codes = {c.name: encode(c, table[c.name]) for c in cols}
    sizes = {c.name: c.size for c in cols}
    kinds = {c.name: "numeric" if c.kind == "numeric" else "categorical" for c in cols}
    n = len(codes[header[0]])
    required = [("education", "education_num"), ("capital_gain", "capital_loss")]

    iters, rho = configure(args)
    real = {c.name: table[c.name] for c in cols}
    results = []
    rng = np.random.default_rng(args.seed)
    for r in range(args.runs):
        t0 = time.monotonic()
        plan = mst.run(dict(sizes), counter(sizes, codes), rho, required=required)
        plan.total = float(n)
        t1 = time.monotonic()
        model = pgm.fit(plan, iters=iters)
        t2 = time.monotonic()
        sampled = pgm.sample(model, plan, n, rng)
        synth = {c.name: c.decode(sampled[c.name], rng) for c in cols}
        synth = {k: (v if kinds[k] == "categorical" else v.astype(float)) for k, v in synth.items()}
        t3 = time.monotonic()
        tv = ev.average_tvd(real, synth, kinds)
        ml = ev.ml_utility(real, synth, kinds, targets=["income"])[0]
        results.append((ml["accuracy_synthetic"], ml["accuracy_real"], tv["tvd_1way"], tv["tvd_2way"]))
        print(f"run {r + 1}: income {ml['accuracy_synthetic']:.4f} (real {ml['accuracy_real']:.4f}); "
              f"1-way {tv['tvd_1way']:.4f} 2-way {tv['tvd_2way']:.4f}; select+measure {t1 - t0:.1f} s, "
              f"fit {t2 - t1:.1f} s, sample {t3 - t2:.1f} s; {len(plan.two_way)} multi-way marginals "
              f"{[m.clique for m in plan.two_way]}; rho spent {base.total_rho(plan):.6f} of {rho:.6f}", flush=True)
    a = np.array(results)
    print(f"mean over {args.runs}: income {a[:, 0].mean():.4f} (real {a[:, 1].mean():.4f}), "
          f"1-way {a[:, 2].mean():.4f}, 2-way {a[:, 3].mean():.4f} (options {args.options}); "
          f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
