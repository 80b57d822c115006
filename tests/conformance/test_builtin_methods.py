"""Every built-in method passes the conformance suite (distmi.testing)."""

from __future__ import annotations

import pytest

from distmi.estimators.registry import available_methods, builtin_methods
from distmi.testing import MethodCase, check_devices, parametrize_with_checks


def test_every_available_builtin_is_checked():
    assert set(builtin_methods()) <= set(available_methods())
    assert {"gmm", "ksg", "sliced", "mine", "nwj", "infonce", "smile"} <= set(builtin_methods())


@parametrize_with_checks(builtin_methods())
def test_builtin_method(method, check):
    check(method)


@pytest.mark.gpu
@pytest.mark.parametrize("name", builtin_methods())
def test_cuda_gives_the_cpu_numbers(name):
    """On a CUDA machine (``make test-gpu``): 'cuda' and 'auto' run there and agree with the
    CPU (check_devices' CUDA branch)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    check_devices(MethodCase.of(name))
