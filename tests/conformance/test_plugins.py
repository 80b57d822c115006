"""The conformance suite on registered plug-ins: a correct toy passes every check, and each
toy that breaks one rule fails the check for that rule (so the suite can fail)."""

from __future__ import annotations

import pytest
from toy_methods import register_toys

from distmi.testing import (
    CheckSettings,
    MethodCase,
    check_ci_coverage,
    check_error_bars,
    check_gaussian_accuracy,
    check_method,
    check_pairs_equal_single,
    check_parameter_validation,
    check_registry_entry,
    check_scale_invariance,
    check_seed_determinism,
    parametrize_with_checks,
)

register_toys()
TOY = CheckSettings(accuracy_n=1000, n_bootstrap=100)


@parametrize_with_checks(["toy-gaussian"], {"toy-gaussian": TOY})
def test_a_correct_plugin_passes_every_check(method, check):
    check(method)


@pytest.mark.parametrize(
    ("name", "check", "fragment"),
    [
        ("toy-biased", check_gaussian_accuracy, r"MI 0.5 nats: mean estimate 0\.4"),
        ("toy-unseeded", check_seed_determinism, "the same seed gave"),
        ("toy-ignores-seed", check_seed_determinism, "does not reach the method's randomness"),
        ("toy-pair-seeds", check_pairs_equal_single, r"pair \(2, 1\): batched std"),
        ("toy-overconfident", check_error_bars, r"ratio 0\.3"),
        ("toy-overconfident", check_ci_coverage, r"95% intervals covered the truth in"),
        ("toy-naive-scale", check_scale_invariance, r"2\^1000.*RuntimeWarning|value nan"),
        ("toy-unvalidated", check_registry_entry, "validate_params is missing"),
        ("toy-unvalidated", check_parameter_validation, "'no_such_parameter' was accepted"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("toy") else None,
)
def test_a_broken_plugin_fails_its_check(name, check, fragment):
    with pytest.raises(AssertionError, match=fragment):
        check(MethodCase.of(name, TOY))


def test_check_method_runs_everything_and_stops_at_the_first_failure():
    check_method("toy-gaussian", TOY)
    with pytest.raises(AssertionError, match=r"\[toy-unvalidated\] check_registry_entry"):
        check_method("toy-unvalidated", TOY)


def test_settings_refuse_too_few_datasets():
    with pytest.raises(ValueError, match="n_datasets_per_level must be >= 30"):
        CheckSettings(n_datasets_per_level=10)
