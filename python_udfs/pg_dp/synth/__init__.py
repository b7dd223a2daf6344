"""DP synthetic data (docs/synthesis.md): CALL dp_synthesize, one table or a whole schema.

One table's run (run.py orders the steps; every value it computes is a field of
state.TableState, assigned by run.py only):

    table.load        the table as the catalog describes it (columns, keys, constraints)
    links.plan        how each foreign key is kept (vocabulary, self, parent in the call, copy)
    relational        the parent its rows are generated under, second paths, child dates
    constraints       what the denial constraints and key types allow (refused before the charge)
    budget            the split of (epsilon, delta) and the noise the dry run tells
      -- the charge --
    discover          the rows measured (tau per unit for a child), DP counts, bounds, values
    relational        a child's fan-out (measure_fanout), its parents' attributes joined in (a path
                      table without a bound: its rows per unit fitted with DP)
    grid              values on a grid (dp.set_step, or found with DP) before the model
    marginals         codes in SQL, GROUP BY GROUPING SETS, the method's measurements and model
    methods/          a synthesis method: select and measure -> fit -> sample
    sample            rows from the model (drawn conditioned on the hard functional dependencies),
                      identifiers, keys from their DP histograms (keys.py)
    constraints       the repair (dc.py): every denial constraint met without dropping rows
    write             the only module that writes to the shadow schema (staging, the atomic swap)

Adding a synthesis method: a module in methods/ with the four steps of methods.base.Method
(select_and_measure, fit, sample, one_way_noise; preload), registered in methods.get; mbi's
fitting and sampling of noisy marginals (methods/pgm.py) serve any marginal-based method.
schema.py resolves and orders the tables of a call; evaluate_schema.py and report.py are the
DBA's evaluations.  Everything but the modules that run SQL is importable without PostgreSQL.
"""
