"""Foundations every layer uses: the database seam (db, the one module that touches plpy),
errors with SQLSTATE and HINT, value encoding and the catalog of protected tables."""
