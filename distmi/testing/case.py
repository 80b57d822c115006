"""What the conformance checks share: the method under test, its data and helpers."""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any

from distmi.api import mutual_information
from distmi.core.results import MIResult
from distmi.estimators.base import MethodEstimator, MIEstimator
from distmi.estimators.registry import MethodSpec, get_method
from distmi.testing.data import gaussian_pair
from distmi.testing.settings import CheckSettings, settings_for

SEED = 20240611


@dataclass(frozen=True)
class MethodCase:
    """A registered method and the settings the suite runs it with."""

    name: str
    settings: CheckSettings

    @classmethod
    def of(cls, method: str | MethodCase, settings: CheckSettings | None = None) -> MethodCase:
        if isinstance(method, MethodCase):
            return method
        return cls(method, settings if settings is not None else settings_for(method))

    @property
    def spec(self) -> MethodSpec:
        return get_method(self.name)

    def __repr__(self) -> str:
        return self.name


def fail(case: MethodCase, check: str, message: str) -> AssertionError:
    return AssertionError(f"[{case.name}] {check}: {message}")


def estimate(case: MethodCase, x: Any, y: Any, **over: Any) -> MIResult:
    """``mutual_information`` with the case's parameters (``over`` wins)."""
    kw = {"n_bootstrap": 4, "random_state": 3, **case.settings.params, **over}
    return mutual_information(x, y, method=case.name, **kw)


def functional_data(case: MethodCase, mi: float = 0.5, key: str = "functional"):
    return gaussian_pair(case.settings.n_samples, mi, SEED, case.name, key)


def same(a: float, b: float, rtol: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    return abs(a - b) <= rtol * max(1.0, abs(a), abs(b))


def estimator_class(case: MethodCase) -> type[MIEstimator]:
    target = case.spec.estimator_class
    if target is None:
        return MethodEstimator
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def make_estimator(case: MethodCase) -> MIEstimator:
    cls = estimator_class(case)
    return cls.for_method(case.name, n_bootstrap=4, random_state=3, **case.settings.params)
