"""distmi: batched, distributed mutual-information estimation inside neural networks.

``import distmi`` is light: torch and ray load only when an estimator or executor needs them.

Quick start::

    import distmi
    result = distmi.mutual_information(x, y)            # GMM-MI with a bootstrap CI, in nats
    table = distmi.pairwise_mi(X, Y, method="gmm")      # every column pair, one batched program
"""

from __future__ import annotations

from distmi.api import mutual_information, pairwise_mi
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
    "NeuralMI": "distmi.estimators.neural:NeuralMI",
    "SlicedMI": "distmi.estimators.sliced:SlicedMI",
    "decompose": "distmi.analyses.decompose",
}

__all__ = [
    "GMMMI",
    "KSG",
    "DistmiError",
    "MIResult",
    "MethodSpec",
    "NeuralMI",
    "SlicedMI",
    "__version__",
    "available_methods",
    "decompose",
    "derive_seed",
    "mutual_information",
    "pairwise_mi",
    "register_method",
]


__getattr__ = lazy_getattr("distmi", _LAZY, globals())
