-- The Python side of every aggregate: exact statistics in, OpenDP-noised value out.
-- Called by the C final functions once per group; it runs no SQL, so it is
-- safe in parallel workers.

CREATE FUNCTION dp_internal.release(kind text, stats text[], params double precision[])
RETURNS double precision
LANGUAGE plpython3u VOLATILE STRICT PARALLEL SAFE
AS $$
from pg_dp.core.db import call
from pg_dp.dp.release import release
return call(release, kind, stats, params)
$$;

COMMENT ON FUNCTION dp_internal.release(text, text[], double precision[]) IS
    'Internal: adds OpenDP noise to the exact statistics of one group (called by the dp_* final functions)';
REVOKE ALL ON FUNCTION dp_internal.release(text, text[], double precision[]) FROM PUBLIC;
