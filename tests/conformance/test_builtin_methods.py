"""Every built-in method passes the conformance suite (distmi.testing)."""

from __future__ import annotations

from distmi.estimators.registry import available_methods
from distmi.testing import parametrize_with_checks


@parametrize_with_checks(available_methods())
def test_builtin_method(method, check):
    check(method)
