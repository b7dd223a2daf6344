"""SDMetrics quality reports of a synthetic schema (bench only: the server never needs sdmetrics).

    <python with sdmetrics> bench/sdmetrics_report.py DIR

DIR holds what bench/suite.py --sdmetrics PYTHON dumped: metadata.json (tables, their columns'
sdtypes, primary keys, relationships) and real/<table>.csv, synthetic/<table>.csv.  Prints one
JSON object: per table SDMetrics' single-table QualityReport (overall score, Column Shapes,
Column Pair Trends) and, when there are relationships, the multi-table QualityReport
(overall, Cardinality, Intertable Trends).  Install sdmetrics apart from the server's Python,
e.g. `python3 -m venv --system-site-packages V && V/bin/pip install sdmetrics`.
"""

import json
import os
import sys
import warnings

import pandas as pd


def load(folder, metadata):
    out = {}
    for name, meta in metadata["tables"].items():
        text = {c: "string" for c, spec in meta["columns"].items() if spec["sdtype"] in ("categorical", "id")}
        frame = pd.read_csv(os.path.join(folder, f"{name}.csv"), keep_default_na=True, dtype=text)
        for column, spec in meta["columns"].items():
            if spec["sdtype"] == "datetime":
                frame[column] = pd.to_datetime(frame[column], errors="coerce")
        out[name] = frame
    return out


def properties(report):
    return {row["Property"]: float(row["Score"]) for _, row in report.get_properties().iterrows()}


def main():
    folder = sys.argv[1]
    with open(os.path.join(folder, "metadata.json")) as f:
        metadata = json.load(f)
    real, synthetic = load(os.path.join(folder, "real"), metadata), load(os.path.join(folder, "synthetic"), metadata)
    warnings.simplefilter("ignore")
    from sdmetrics.reports import multi_table, single_table

    result = {"tables": {}}
    for name, meta in metadata["tables"].items():
        report = single_table.QualityReport()
        report.generate(real[name], synthetic[name], meta, verbose=False)
        result["tables"][name] = {"score": float(report.get_score()), **properties(report)}
    if metadata.get("relationships"):
        report = multi_table.QualityReport()
        report.generate(real, synthetic, metadata, verbose=False)
        result["multi_table"] = {"score": float(report.get_score()), **properties(report)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
