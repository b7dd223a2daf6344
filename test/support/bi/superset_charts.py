"""Superset's own query generation and execution (PyPI apache-superset, in its virtual environment).

Run with the virtual environment's python; SUPERSET_CONFIG_PATH and SUPERSET_HOME point at a
throwaway metadata database (scripts/bi-tools.sh makes a migrated template).  Registers a
database connection for the given SQLAlchemy URI, the physical dataset `public.<table>` and a
virtual dataset (a SQL query over it), and runs the charts of the JSON spec on stdin through
Superset's ChartDataCommand -- the code behind /api/v1/chart/data -- so the SQL that reaches
PostgreSQL is exactly what Superset writes (series limits, time grains, time comparison, native
filters as adhoc filters, virtual datasets).

Writes {"chart name": {"queries": [{"sql": ..., "data": [...]}, ...]} or {"error": "..."}}.
"""

import json
import os
import sys


def main():
    spec = json.load(sys.stdin)
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        from superset.commands.chart.data.get_data_command import ChartDataCommand
        from superset.common.chart_data import ChartDataResultType
        from superset.common.query_context_factory import QueryContextFactory
        from superset.connectors.sqla.models import SqlaTable
        from superset.extensions import db
        from superset.models.core import Database

        database = Database(database_name="pg_dp " + os.urandom(4).hex(), sqlalchemy_uri=spec["uri"])
        db.session.add(database)
        db.session.commit()
        datasets = {}
        for name, (table, sql, dttm) in spec["datasets"].items():
            ds = SqlaTable(table_name=table, schema=None if sql else "public", sql=sql, database=database)
            db.session.add(ds)
            db.session.commit()
            ds.fetch_metadata()             # the columns, read by Superset's inspector as this role
            ds.main_dttm_col = dttm
            db.session.commit()
            datasets[name] = ds
        out = {"columns": {name: [c.column_name for c in ds.columns] for name, ds in datasets.items()}}
        for chart, (dataset, queries, form_data) in spec["charts"].items():
            try:
                context = QueryContextFactory().create(
                    datasource={"id": datasets[dataset].id, "type": "table"}, queries=queries,
                    form_data=form_data, result_type=ChartDataResultType.FULL)
                payload = ChartDataCommand(context).run()
                out[chart] = {"queries": [{"sql": q.get("query"), "data": q.get("data"),
                                           "error": q.get("error")} for q in payload["queries"]]}
            except Exception as e:      # reported to the test, which fails on it
                out[chart] = {"error": f"{type(e).__name__}: {e}"}
        with open(sys.argv[1], "w") as f:        # stdout carries Superset's own logging
            json.dump(out, f, default=str)


if __name__ == "__main__":
    main()
