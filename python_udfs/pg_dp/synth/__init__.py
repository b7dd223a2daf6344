"""DP synthetic data: domain -> measure (SQL GROUP BY) -> select -> model (mbi) -> sample
-> constraints -> write the shadow schema.  Everything but pg_dp.synth.run is importable
without PostgreSQL."""
