-- Datasets spanning a schema: a table may reach the dataset's privacy unit through a path
-- of foreign keys (invoice_line.invoice_id -> invoice.customer_id), recorded by dp.protect;
-- every table keeps its own contribution bound (a later dp.protect never changes another
-- table's).  See docs/synthesis.md, "Synthesizing a schema".

ALTER TABLE dp_internal.protected_tables
    ADD COLUMN unit_path jsonb,             -- [{"conname", "cols", "ref", "refcols"}, ...] to a table with the unit
    ADD COLUMN max_rows_per_unit integer CHECK (max_rows_per_unit >= 1),   -- NULL: the dataset's
    ADD COLUMN not_personal text[];         -- foreign keys to the dataset's tables the DBA declared not personal

CREATE VIEW dp.protected_tables AS
SELECT p.relid::regclass AS table_name, p.dataset,
       coalesce(p.unit_column, d.privacy_unit) AS privacy_unit,
       (SELECT pg_catalog.string_agg(pg_catalog.format('%s -> %s', s.step->>'cols', (s.step->>'ref')::oid::regclass),
                                     ' -> ' ORDER BY s.n)
          FROM pg_catalog.jsonb_array_elements(p.unit_path) WITH ORDINALITY s(step, n)) AS unit_path,
       coalesce(p.max_rows_per_unit, d.max_rows_per_unit) AS max_rows_per_unit, p.not_personal
FROM dp_internal.protected_tables p JOIN dp_internal.datasets d ON d.name = p.dataset
WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = p.relid);
GRANT SELECT ON dp.protected_tables TO PUBLIC;

COMMENT ON COLUMN dp_internal.protected_tables.unit_path IS 'Foreign keys from the table to a table holding the privacy unit column (NULL: it holds it, or each row is a unit)';
COMMENT ON COLUMN dp_internal.protected_tables.max_rows_per_unit IS 'Most rows of this table one privacy unit contributes (NULL: the dataset''s)';
COMMENT ON COLUMN dp_internal.protected_tables.not_personal IS 'Foreign keys to tables of the dataset that the DBA declared not personal: a row is bounded by its own unit only, and the referenced unit''s rows here are not protected (docs/dba.md)';
COMMENT ON VIEW dp.protected_tables IS 'Protected tables: dataset, privacy unit, the foreign-key path to it, the table''s own contribution bound, and the keys declared not personal';
