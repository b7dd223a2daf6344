"""The DP query gateway: parse (pglast) -> analyze -> plan/rewrite -> release.

`parse` is imported first on purpose: it loads pglast's parser with
RTLD_DEEPBIND, which must happen before any other module imports pglast
(inside the server a plain load of libpg_query crashes the backend).
"""

from . import parse  # noqa: F401  (must stay the first import of pglast)
