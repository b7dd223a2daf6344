"""The DP query gateway: parse (pglast) -> analyze -> plan/rewrite -> release."""
