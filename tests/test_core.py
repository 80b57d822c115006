"""The bottom layer: errors, validation, seeds, result types, the registry and the API shell."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import distmi
from distmi.core import errors
from distmi.core.results import MIResult, percentile_interval
from distmi.core.seeds import derive_rng, derive_seed
from distmi.core.validation import as_float_matrix, as_labels, check_same_length


def test_import_is_light():
    code = "import sys, distmi; print('torch' in sys.modules, 'ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_error_hierarchy():
    for cls in (
        errors.NonFiniteInputError, errors.ConstantColumnError, errors.TooFewSamplesError,
        errors.LengthMismatchError, errors.NonNumericInputError, errors.SingleClassError,
        errors.UnknownMethodError, errors.InvalidParameterError, errors.CorruptDataError,
        errors.UnknownLayerError, errors.SpecError,
    ):
        assert issubclass(cls, errors.DistmiError)
    assert issubclass(errors.InvalidInputError, ValueError)
    assert issubclass(errors.UnknownMethodError, KeyError)


def test_seed_derivation_is_stable_and_keyed():
    assert derive_seed(0, "bootstrap") == derive_seed(0, "bootstrap")
    assert derive_seed(0, "bootstrap") != derive_seed(1, "bootstrap")
    assert derive_seed(0, "a", 1) != derive_seed(0, "a", 2)
    assert derive_seed(0, "1") != derive_seed(0, 1)  # types are part of the key
    # stable across processes (independent of PYTHONHASHSEED)
    code = "from distmi.core.seeds import derive_seed; print(derive_seed(7, 'unit', 3))"
    outs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONHASHSEED": str(h)}, check=True).stdout.strip()
        for h in (1, 2)
    }
    assert outs == {str(derive_seed(7, "unit", 3))}
    a = derive_rng(3, "x").random(4)
    np.testing.assert_array_equal(a, derive_rng(3, "x").random(4))


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_bad_seed(bad):
    with pytest.raises(errors.InvalidParameterError, match="random_state"):
        derive_seed(bad, "x")


def test_as_float_matrix_shapes_and_errors():
    assert as_float_matrix([1.0, 2.0, 3.0]).shape == (3, 1)
    assert as_float_matrix(np.ones((4, 2)) * [[1], [2], [3], [4]]).shape == (4, 2)
    with pytest.raises(errors.NonFiniteInputError, match=r"1 NaN and 1 Inf.*first at index \(1, 0\)"):
        as_float_matrix([[0.0], [np.nan], [np.inf], [1.0]])
    with pytest.raises(errors.ConstantColumnError, match=r"column 1 is constant.*drop constant"):
        as_float_matrix(np.column_stack([np.arange(5.0), np.full(5, 3.0)]))
    with pytest.raises(errors.NonNumericInputError, match=r"must be numeric.*'a'"):
        as_float_matrix(["a", "b", "c"])
    with pytest.raises(errors.InvalidInputError, match=r"shape \(n,\) or \(n, d\)"):
        as_float_matrix(np.zeros((2, 2, 2)))
    with pytest.raises(errors.InvalidInputError, match="empty"):
        as_float_matrix(np.zeros((0, 3)))


def test_as_labels():
    codes, classes = as_labels(["b", "a", "b"])
    np.testing.assert_array_equal(codes, [1, 0, 1])
    assert list(classes) == ["a", "b"]
    with pytest.raises(errors.SingleClassError, match=r"single class.*at least two classes"):
        as_labels([3, 3, 3])
    with pytest.raises(errors.InvalidInputError, match="non-integer values"):
        as_labels([0.5, 1.0])


def test_length_mismatch():
    with pytest.raises(errors.LengthMismatchError, match="x has 3, y has 2 rows"):
        check_same_length(x=np.zeros(3), y=np.zeros(2))


def test_result_type():
    r = MIResult(0.5, 0.1, (0.3, 0.7), 100, "gmm", {"a": np.int64(1)}, {"b": np.arange(2)})
    assert r.unit == "nat" and r.ci_low == 0.3 and r.ci_high == 0.7
    assert r.to_bits() == pytest.approx(0.5 / np.log(2))
    d = r.to_dict()
    assert d["params"]["a"] == 1 and d["diagnostics"]["b"] == [0, 1]
    low, high = percentile_interval(np.arange(101.0))
    assert (low, high) == pytest.approx((2.5, 97.5))


def test_unknown_method_suggests():
    with pytest.raises(errors.UnknownMethodError, match=r"unknown MI method 'gmn'.*Did you mean 'gmm'"):
        distmi.mutual_information(np.arange(10.0), np.arange(10.0) ** 2, method="gmn")


def test_register_custom_method():
    def estimate(x, y, *, discrete_y, n_bootstrap, random_state, **params):
        c = np.corrcoef(x[:, 0], y[:, 0])[0, 1]
        return MIResult(-0.5 * np.log(1 - min(c**2, 0.999)), float("nan"), (np.nan, np.nan), len(x), "corr")

    distmi.register_method(distmi.MethodSpec("corr", estimate, supports_discrete_y=False),
                           overwrite=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=500)
    y = x + rng.normal(size=500)
    assert distmi.mutual_information(x, y, method="corr").value > 0.2
    table = distmi.pairwise_mi(np.column_stack([x, y]), np.column_stack([y, x]), method="corr")
    assert len(table) == 4 and set(table.columns) >= {"x_index", "y_index", "estimate", "ci_low"}
    with pytest.raises(errors.InvalidParameterError, match="does not support a discrete y"):
        distmi.mutual_information(x, (y > 0).astype(int), method="corr", discrete_y=True)
