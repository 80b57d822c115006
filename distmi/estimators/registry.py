"""The ``method=`` registry behind :func:`distmi.mutual_information` and :func:`distmi.pairwise_mi`.

A method is a :class:`MethodSpec`: an ``estimate`` function for one (x, y) problem and,
optionally, an ``estimate_pairs`` function that solves many column pairs as one batched
program. Built-in methods are registered by import path and loaded on first use, so
``import distmi`` stays free of torch. Adding an estimator is one :func:`register_method` call
(or one line in ``_BUILTIN``).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from distmi.core.errors import UnknownMethodError


@dataclass(frozen=True)
class MethodSpec:
    """How to run one estimator.

    Attributes:
        name: registry key, e.g. ``"gmm"``.
        estimate: ``(x, y, *, discrete_y, n_bootstrap, random_state, **params) -> MIResult``.
        estimate_pairs: batched ``(X, Y, pairs, *, ...) -> list[MIResult]`` or ``None``
            (then pairs are estimated one at a time).
        supports_discrete_y: whether a label vector y is accepted.
        supports_multivariate: whether x and y may have more than one column.
        description: one line for ``distmi methods`` and error messages.
    """

    name: str
    estimate: Callable[..., Any]
    estimate_pairs: Callable[..., list[Any]] | None = None
    supports_discrete_y: bool = True
    supports_multivariate: bool = True
    description: str = ""


# name -> "module:attribute" of a MethodSpec, imported lazily.
_BUILTIN: dict[str, str] = {
    "gmm": "distmi.estimators.gmm_methods:GMM_METHOD",
    "ksg": "distmi.estimators.ksg:KSG_METHOD",
    "sliced": "distmi.estimators.sliced:SLICED_METHOD",
    "wkl": "distmi.estimators.wkl:WKL_METHOD",
    "mine": "distmi.estimators.neural:MINE_METHOD",
    "nwj": "distmi.estimators.neural:NWJ_METHOD",
    "infonce": "distmi.estimators.neural:INFONCE_METHOD",
    "smile": "distmi.estimators.neural:SMILE_METHOD",
}
_REGISTERED: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec, *, overwrite: bool = False) -> None:
    """Register an estimator under ``spec.name``."""
    if not overwrite and (spec.name in _REGISTERED):
        raise ValueError(f"method {spec.name!r} is already registered; pass overwrite=True")
    _REGISTERED[spec.name] = spec


def available_methods() -> list[str]:
    """Names accepted by ``method=`` (built-ins whose module is importable, plus registered)."""
    names = set(_REGISTERED)
    for name, target in _BUILTIN.items():
        module = target.split(":")[0]
        if importlib.util.find_spec(module) is not None:
            names.add(name)
    return sorted(names)


def get_method(name: str) -> MethodSpec:
    """Look up a method by name, importing built-ins on first use."""
    if not isinstance(name, str):
        raise UnknownMethodError(
            f"method must be a string such as 'gmm', got {name!r} ({type(name).__name__})."
        )
    key = name.lower()
    if key in _REGISTERED:
        return _REGISTERED[key]
    target = _BUILTIN.get(key)
    if target is not None:
        module_name, attr = target.split(":")
        if importlib.util.find_spec(module_name) is not None:
            spec = getattr(importlib.import_module(module_name), attr)
            _REGISTERED[key] = spec
            return spec
    known = available_methods()
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownMethodError(
        f"unknown MI method {name!r}; available methods are {known}.{hint} "
        "Register new ones with distmi.register_method()."
    )
