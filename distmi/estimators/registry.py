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

from distmi.core.errors import InvalidParameterError, UnknownMethodError


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
        validate_params: ``(params: dict) -> None``; checks the method's own parameters
            without data (unknown names, types, ranges) and raises
            :class:`~distmi.core.errors.InvalidParameterError` naming the problem. ``distmi
            validate`` runs it on a job's ``estimator.params``, estimator classes before
            touching the data. ``None``: parameters are only checked when estimating.
        supports_conditional: whether ``estimate`` takes ``z=`` for I(X; Y | Z).
        estimator_class: ``"module:Class"`` of the scikit-learn-style class of the method
            (a :class:`~distmi.estimators.base.MIEstimator`), or ``None`` for
            :class:`~distmi.estimators.base.MethodEstimator`.
        ci_covers: what the reported 95% interval covers: ``"mi"`` (the mutual information;
            checked for coverage by :mod:`distmi.testing`) or ``"bound"`` (the value of a
            variational bound with the trained critic, which lies below the MI: its lower end
            is a lower confidence bound of the MI).
        statuses: the values besides ``"ok"`` that the method writes to
            ``diagnostics["status"]`` when a result is not to be trusted.
    """

    name: str
    estimate: Callable[..., Any]
    estimate_pairs: Callable[..., list[Any]] | None = None
    supports_discrete_y: bool = True
    supports_multivariate: bool = True
    description: str = ""
    validate_params: Callable[[dict[str, Any]], None] | None = None
    supports_conditional: bool = False
    estimator_class: str | None = None
    ci_covers: str = "mi"
    statuses: tuple[str, ...] = ()

    def check_params(self, params: dict[str, Any]) -> None:
        """Run :attr:`validate_params` on ``params`` (nothing when the method has none)."""
        if self.validate_params is not None:
            self.validate_params(dict(params))


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
    """Register an estimator under ``spec.name`` (lower case; built-in names are taken).

    Check a new method with :func:`distmi.testing.check_method` (the conformance suite every
    built-in passes).
    """
    if not isinstance(spec, MethodSpec):
        raise InvalidParameterError(
            f"register_method takes a MethodSpec, got {type(spec).__name__}; wrap the "
            "estimate function: MethodSpec(name, estimate, ...)."
        )
    if not isinstance(spec.name, str) or not spec.name or spec.name != spec.name.lower():
        raise InvalidParameterError(
            f"method names are non-empty lower-case strings, got {spec.name!r}."
        )
    taken = spec.name in _REGISTERED or spec.name in _BUILTIN
    if taken and not overwrite:
        raise InvalidParameterError(
            f"method {spec.name!r} is already registered; pass overwrite=True to replace it."
        )
    _REGISTERED[spec.name] = spec


def available_methods() -> list[str]:
    """Names accepted by ``method=`` (built-ins whose module is importable, plus registered)."""
    names = set(_REGISTERED)
    for name, target in _BUILTIN.items():
        module = target.split(":")[0]
        if importlib.util.find_spec(module) is not None:
            names.add(name)
    return sorted(names)


def builtin_methods() -> list[str]:
    """The built-in names among :func:`available_methods` (their modules are importable)."""
    return [name for name in available_methods() if name in _BUILTIN]


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
