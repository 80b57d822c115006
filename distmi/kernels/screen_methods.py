"""Names of the rank-screen statistics and methods (a light module: no numba, no scipy).

A screen *method* combines one or more *statistics* of :mod:`distmi.kernels.rank_screen`; with
more than one, their p-values combine by the min-P rule
(:func:`distmi.kernels.significance.min_p_pvalues`).
"""

from __future__ import annotations

SCREEN_STATISTICS = ("ksg", "gaussian", "xi")
SCREEN_METHODS: dict[str, tuple[str, ...]] = {
    "ksg+gaussian": ("ksg", "gaussian"),
    "ksg": ("ksg",),
    "gaussian": ("gaussian",),
    "xi": ("xi",),
}
