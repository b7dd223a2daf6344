"""Synthesis methods behind one interface (pg_dp.synth.methods.base.Method):
select and measure -> fit -> sample.  MST (methods/mst.py) is the one in use; a second
method (AIM-style selection against a refitted model, a relational model) is a module
here with the same four steps, registered in METHODS.  Models of noisy marginals are
fitted and sampled by methods/pgm.py (mbi), whichever method chose them."""

from __future__ import annotations

from .base import Method

DEFAULT = "mst"


def get(name: str = DEFAULT) -> Method:
    if name == "mst":
        from .mst import MST
        return MST()
    raise KeyError(f"unknown synthesis method {name!r}")
