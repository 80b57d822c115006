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


# ---- scale: one standardisation for every estimator -------------------------------------
def test_standardize_is_exact_for_powers_of_two_and_finite_at_any_scale():
    import warnings

    from distmi.core.scaling import constant_mask, standardize

    x = np.random.default_rng(1).normal(size=(3, 500))
    naive = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(standardize(x, axis=1), naive)
        for k in (1000, -1000, 1, -60):
            np.testing.assert_array_equal(standardize(x * 2.0**k, axis=1), naive)
        for factor in (1e200, 1e300, 1e-13, 1e-300):
            np.testing.assert_allclose(standardize(x * factor, axis=1), naive, rtol=0, atol=1e-14)
        assert not constant_mask(x * 1e-300, axis=1).any()
    # naive z-scores of 1e200 data overflow (the bug this replaces)
    with np.errstate(over="ignore"):
        assert not np.isfinite(((x * 1e200) ** 2).mean())


def test_constant_is_relative_to_the_columns_own_magnitude():
    from distmi.core.scaling import constant_mask

    cols = np.stack([
        np.zeros(6),                             # all zeros
        np.full(6, 3e-300),                      # constant at a tiny scale
        np.r_[np.ones(5), 1 + 1e-13],            # 1e-13 relative spread: rounding noise
        np.r_[np.ones(5), 1 + 1e-9],             # 1e-9 relative spread: a real column
        np.linspace(0, 1e-13, 6),                # a real column in units of 1e-13
        np.linspace(-1e300, 1e300, 6),           # a real column near the float64 limit
    ], axis=1)
    assert constant_mask(cols, axis=0).tolist() == [True, True, True, False, False, False]
    with pytest.raises(errors.ConstantColumnError, match=r"column 0 is constant \(every value is 1.0 up"):
        as_float_matrix(cols[:, 2:])
    as_float_matrix(cols[:, 3:])  # accepted


def test_engine_marks_the_same_columns_constant():
    from distmi.engine.worker import _usable

    assert _usable(np.linspace(0, 1e-13, 50)) == "ok"
    assert _usable(np.full(50, 1e-20)) == "constant"
    assert _usable(np.r_[np.zeros(49), np.nan]) == "nonfinite"


# ---- seeds and devices --------------------------------------------------------------------
def test_random_state_none_draws_and_the_result_records_a_reproducible_seed():
    from distmi.core.seeds import resolve_seed

    seeds = {resolve_seed(None) for _ in range(5)}
    assert len(seeds) == 5 and all(0 <= s < 2**63 for s in seeds)
    assert resolve_seed(7) == 7 and resolve_seed(np.int64(7)) == 7
    rng = np.random.default_rng(2)
    x = rng.normal(size=300)
    y = x + rng.normal(size=300)
    r = distmi.mutual_information(x, y, method="ksg", n_bootstrap=5, random_state=None)
    again = distmi.mutual_information(x, y, method="ksg", n_bootstrap=5,
                                      random_state=r.params["random_state"])
    assert (again.value, again.std, again.ci) == (r.value, r.std, r.ci)
    table = distmi.pairwise_mi(x[:, None], y[:, None], method="ksg", n_bootstrap=5,
                               random_state=None)
    assert isinstance(table.attrs["random_state"], int)


@pytest.mark.parametrize("good", ["cpu", "cuda", "cuda:0", "cuda:12", "auto"])
def test_device_vocabulary_accepts(good):
    from distmi.core.devices import check_device

    assert check_device(good) == good


@pytest.mark.parametrize("bad", ["gpu", "CPU", "cuda:", "cuda:-1", "cuda:01", "tpu", 0, None])
def test_device_vocabulary_rejects(bad):
    from distmi.core.devices import check_device

    with pytest.raises(errors.InvalidParameterError, match=r"'cpu', 'cuda', 'cuda:N'.*'auto'"):
        check_device(bad)


def test_auto_resolves_to_what_torch_sees():
    torch = pytest.importorskip("torch")
    from distmi.core.devices import resolve_device

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


# ---- the repository is self-contained ----------------------------------------------------
def test_project_files_refer_only_to_the_repository():
    """No tracked text file points at notes outside the repository."""
    from pathlib import Path

    root = Path(__file__).parents[1]
    banned = ["ANCH" + "ORS", "../" + "shared", "/work" + "/", "DESIGN" + ".md",
              "STYLE" + ".md", "HELPERS" + ".md"]
    offenders = []
    skip = {".git", ".venv", "out", "refvenv", "__pycache__", ".ruff_cache", ".pytest_cache"}
    for path in root.rglob("*"):
        if set(path.relative_to(root).parts) & skip or not path.is_file():
            continue
        if path.suffix not in {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg"} and \
                path.name not in {"Makefile", "Dockerfile"}:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        offenders += [f"{path.relative_to(root)}: {b}" for b in banned if b in text]
    assert not offenders, offenders
