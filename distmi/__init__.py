"""distmi: batched, distributed mutual-information estimation inside neural networks.

``import distmi`` is light: torch and ray load only when an estimator or executor needs them.

Quick start::

    import distmi
    result = distmi.mutual_information(x, y)            # GMM-MI with a bootstrap CI, in nats
    table = distmi.pairwise_mi(X, Y, method="gmm")      # every column pair, one batched program
    screen = distmi.screen_pairs(X, Y)                  # rank screen: p-values, q-values
"""

from __future__ import annotations

from distmi.api import mutual_information, pairwise_mi, screen_pairs
from distmi.core import (
    DistmiError,
    MIResult,
    derive_seed,
)
from distmi.core.lazy import lazy_getattr
from distmi.core.version import __version__
from distmi.estimators.registry import MethodSpec, available_methods, register_method

_LAZY = {
    "GMMMI": "distmi.estimators.gmm:GMMMI",
    "KSG": "distmi.estimators.ksg:KSG",
    "MIEstimator": "distmi.estimators.base:MIEstimator",
    "MethodEstimator": "distmi.estimators.base:MethodEstimator",
    "NeuralMI": "distmi.estimators.neural:NeuralMI",
    "SlicedMI": "distmi.estimators.sliced:SlicedMI",
    "WKL": "distmi.estimators.wkl:WKL",
    "information_plane": "distmi.analyses.infoplane:information_plane",
    "nif": "distmi.analyses.nif",
    "decompose": "distmi.analyses.decompose",
}

__all__ = [
    "GMMMI",
    "KSG",
    "WKL",
    "DistmiError",
    "MIEstimator",
    "MIResult",
    "MethodEstimator",
    "MethodSpec",
    "NeuralMI",
    "SlicedMI",
    "__version__",
    "available_methods",
    "decompose",
    "derive_seed",
    "information_plane",
    "mutual_information",
    "nif",
    "pairwise_mi",
    "register_method",
    "screen_pairs",
]


__getattr__ = lazy_getattr("distmi", _LAZY, globals())
