"""The conformance suite every MI method passes, built-in or plug-in.

Like scikit-learn's ``parametrize_with_checks``: each registered method is run through named
checks (registry entry, parameter validation, result contract, batched pairs equal single
estimates, seeds, bad input, scale extremes, devices, pickling for Ray, the estimator class,
trust flags, and the statistical checks: Gaussian closed form, error bars, interval coverage).
A check raises ``AssertionError`` naming the method, the check and the problem.

In a test file of a package that registers a method::

    from distmi.testing import CheckSettings, parametrize_with_checks

    @parametrize_with_checks(["my_method"], {"my_method": CheckSettings(params={"k": 5})})
    def test_my_method(method, check):
        check(method)

or all at once: ``distmi.testing.check_method("my_method")``. ``docs/estimators.md`` lists
the checks and the tolerances of the built-in methods. :mod:`distmi.testing.mi_families`
holds test data with closed-form MI (numpy and scipy only), shared by tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from distmi.testing.case import MethodCase
from distmi.testing.checks_api import (
    check_bad_input,
    check_devices,
    check_pairs_equal_single,
    check_parameter_validation,
    check_registry_entry,
    check_result_contract,
    check_scale_invariance,
    check_seed_determinism,
)
from distmi.testing.checks_objects import check_estimator_class, check_pickling, check_trust_flags
from distmi.testing.checks_stats import (
    check_ci_coverage,
    check_error_bars,
    check_gaussian_accuracy,
)
from distmi.testing.settings import BUILTIN_SETTINGS, CheckSettings, TrustCase, settings_for

Check = Callable[[MethodCase], None]

FUNCTIONAL_CHECKS: tuple[Check, ...] = (
    check_registry_entry,
    check_parameter_validation,
    check_result_contract,
    check_pairs_equal_single,
    check_seed_determinism,
    check_bad_input,
    check_scale_invariance,
    check_devices,
    check_pickling,
    check_estimator_class,
    check_trust_flags,
)
STATISTICAL_CHECKS: tuple[Check, ...] = (
    check_gaussian_accuracy,
    check_error_bars,
    check_ci_coverage,
)


def method_checks(method: str | MethodCase, settings: CheckSettings | None = None
                  ) -> list[tuple[MethodCase, Check]]:
    """(case, check) for every check of ``method``."""
    case = MethodCase.of(method, settings)
    return [(case, check) for check in (*FUNCTIONAL_CHECKS, *STATISTICAL_CHECKS)]


def check_method(method: str, settings: CheckSettings | None = None) -> None:
    """Run every check on a registered method; the first failure raises ``AssertionError``."""
    for case, check in method_checks(method, settings):
        check(case)


def parametrize_with_checks(methods: Iterable[str],
                            settings: Mapping[str, CheckSettings] | None = None):
    """A ``pytest.mark.parametrize`` over (method, check) with ids ``NAME-check_name``.

    The test receives ``method`` (a :class:`MethodCase`) and ``check`` and calls
    ``check(method)``. Statistical checks of methods whose settings say
    ``slow_statistics`` are marked ``slow``.
    """
    import pytest

    settings = dict(settings or {})
    params = []
    for name in methods:
        for case, check in method_checks(name, settings.get(name)):
            slow = case.settings.slow_statistics and check in STATISTICAL_CHECKS
            params.append(pytest.param(case, check, id=f"{name}-{check.__name__}",
                                       marks=[pytest.mark.slow] if slow else []))
    return pytest.mark.parametrize(("method", "check"), params)


__all__ = [
    "BUILTIN_SETTINGS",
    "FUNCTIONAL_CHECKS",
    "STATISTICAL_CHECKS",
    "CheckSettings",
    "MethodCase",
    "TrustCase",
    "check_bad_input",
    "check_ci_coverage",
    "check_devices",
    "check_error_bars",
    "check_estimator_class",
    "check_gaussian_accuracy",
    "check_method",
    "check_pairs_equal_single",
    "check_parameter_validation",
    "check_pickling",
    "check_registry_entry",
    "check_result_contract",
    "check_scale_invariance",
    "check_seed_determinism",
    "check_trust_flags",
    "method_checks",
    "parametrize_with_checks",
    "settings_for",
]
