"""Functional conformance checks on the function API: registry entry, parameters, results,
batched pairs, seeds, bad input, scale and devices.

Each check takes a :class:`~distmi.testing.case.MethodCase` and raises ``AssertionError``
naming the method, the check and what went wrong; it returns nothing when the method conforms.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np

from distmi.api import mutual_information, pairwise_mi
from distmi.core import errors
from distmi.core.results import STATUSES, MIResult
from distmi.estimators.registry import MethodSpec
from distmi.testing.case import (
    SEED,
    MethodCase,
    estimate,
    fail,
    functional_data,
    make_estimator,
    same,
)
from distmi.testing.data import gaussian_columns, labelled


# ---------------------------------------------------------------------------- registry
def check_registry_entry(case: MethodCase) -> None:
    """The method is registered with a usable :class:`MethodSpec`."""
    spec = case.spec
    name = "check_registry_entry"
    if not isinstance(spec, MethodSpec) or spec.name != case.name:
        raise fail(case, name, f"get_method returned {spec!r}, not a MethodSpec named {case.name!r}")
    if not callable(spec.estimate):
        raise fail(case, name, "MethodSpec.estimate is not callable")
    if spec.validate_params is None:
        raise fail(case, name, "MethodSpec.validate_params is missing: `distmi validate` cannot "
                               "check the method's parameters before a job runs")
    if spec.ci_covers not in ("mi", "bound"):
        raise fail(case, name, f"ci_covers must be 'mi' or 'bound', got {spec.ci_covers!r}")
    unknown = set(spec.statuses) - set(STATUSES)
    if unknown:
        raise fail(case, name, f"statuses {sorted(unknown)} are not in the documented "
                               f"vocabulary {sorted(STATUSES)}")


def check_parameter_validation(case: MethodCase) -> None:
    """``validate_params`` accepts the suite's parameters and rejects an unknown name (also
    when estimating), with :class:`InvalidParameterError` naming it."""
    spec, name = case.spec, "check_parameter_validation"
    spec.check_params(case.settings.params)
    for call in (lambda: spec.check_params({**case.settings.params, "no_such_parameter": 1}),
                 lambda: estimate(case, *functional_data(case), no_such_parameter=1)):
        try:
            call()
        except errors.InvalidParameterError as exc:
            if "no_such_parameter" not in str(exc):
                raise fail(case, name, f"the error does not name the parameter: {exc}") from exc
        else:
            raise fail(case, name, "an unknown parameter 'no_such_parameter' was accepted")


# ----------------------------------------------------------------------------- results
def check_result_contract(case: MethodCase) -> None:
    """An estimate is an :class:`MIResult` in nats that records its method, size and seed."""
    name = "check_result_contract"
    x, y = functional_data(case)
    r = estimate(case, x, y, n_bootstrap=4, random_state=11)
    if not isinstance(r, MIResult):
        raise fail(case, name, f"estimate returned {type(r).__name__}, not MIResult")
    problems = []
    if r.method != case.name:
        problems.append(f"method is {r.method!r}")
    if r.unit != "nat":
        problems.append(f"unit is {r.unit!r}")
    if r.n_samples != len(x):
        problems.append(f"n_samples is {r.n_samples}, data have {len(x)} rows")
    if not math.isfinite(r.value):
        problems.append(f"value is {r.value}")
    if r.params.get("random_state") != 11 or r.params.get("n_bootstrap") != 4:
        problems.append("params do not record random_state=11 and n_bootstrap=4: "
                        f"{ {k: r.params.get(k) for k in ('random_state', 'n_bootstrap')} }")
    if not (math.isnan(r.std) or r.std >= 0):
        problems.append(f"std is {r.std}")
    low, high = r.ci
    if not (math.isnan(low) and math.isnan(high)) and not low <= high:
        problems.append(f"ci {r.ci} is not ordered")
    if r.status not in ("ok", *case.spec.statuses):
        problems.append(f"status {r.status!r} is not 'ok' or one of {case.spec.statuses}")
    try:
        json.dumps(r.to_dict())
    except (TypeError, ValueError) as exc:
        problems.append(f"to_dict() is not JSON-ready ({exc})")
    if problems:
        raise fail(case, name, "; ".join(problems))


def check_pairs_equal_single(case: MethodCase) -> None:
    """Every row of one batched ``pairwise_mi`` call equals the pair estimated alone."""
    name, rtol = "check_pairs_equal_single", case.settings.pairs_rtol
    n = case.settings.n_samples
    X, Y = gaussian_columns(n, np.array([0.5, 0.05, 0.3]), SEED, case.name, "pairs")
    jobs = [(Y, [(0, 0), (2, 1), (1, 2), (0, 2)], False)]
    if case.spec.supports_discrete_y:
        xl, labels = labelled(n, SEED, case.name, "pairs")
        jobs.append((labels, [(0, 0), (1, 0)], True))
        X_l = xl
    kw = {"n_bootstrap": 4, "random_state": 5, **case.settings.params}
    for target, pairs, discrete in jobs:
        X_used = X_l if discrete else X
        table = pairwise_mi(X_used, target, method=case.name, pairs=pairs, discrete_y=discrete,
                            **kw)
        for (i, j), row in zip(pairs, table.itertuples(), strict=True):
            y = target if discrete else target[:, j]
            alone = mutual_information(X_used[:, i], y, method=case.name, discrete_y=discrete,
                                       **kw)
            for field, got, want in (("estimate", row.estimate, alone.value),
                                     ("std", row.std, alone.std),
                                     ("ci_low", row.ci_low, alone.ci[0])):
                if not same(got, want, rtol):
                    raise fail(case, name, f"pair ({i}, {j}){' with labels' if discrete else ''}: "
                                           f"batched {field} {got!r} != alone {want!r} "
                                           f"(rtol {rtol})")


def check_seed_determinism(case: MethodCase) -> None:
    """Same seed, same numbers; another seed, other numbers; ``random_state=None`` draws a
    fresh seed, records it in ``params`` and reproduces the result when passed back."""
    name = "check_seed_determinism"
    x, y = functional_data(case)

    def run(seed):
        return estimate(case, x, y, n_bootstrap=6, random_state=seed)

    a, b = run(7), run(7)
    if (a.value, a.std, a.ci) != (b.value, b.std, b.ci) and not (
        same(a.value, b.value, 0) and same(a.std, b.std, 0)
    ):
        raise fail(case, name, f"the same seed gave {a.value!r} then {b.value!r}")
    if case.settings.seed_sensitive:
        c = run(8)
        if same(a.value, c.value, 0) and same(a.std, c.std, 0):
            raise fail(case, name, "seeds 7 and 8 gave identical value and std: the seed "
                                   "does not reach the method's randomness")
    fresh = run(None)
    seed = fresh.params.get("random_state")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise fail(case, name, f"random_state=None recorded {seed!r} in params, not the "
                               "integer seed it drew")
    again = run(seed)
    if not (same(fresh.value, again.value, 0) and same(fresh.std, again.std, 0)):
        raise fail(case, name, f"the recorded seed {seed} did not reproduce the result "
                               f"({fresh.value!r} vs {again.value!r})")
    if run(None).params.get("random_state") == seed:
        raise fail(case, name, "two random_state=None calls drew the same seed")


# ---------------------------------------------------------------------------- bad input
def _bad_inputs(case: MethodCase) -> list[tuple[str, Any, type, str]]:
    x, y = functional_data(case)
    x_nan = x.copy()
    x_nan[3] = np.nan
    rows = [
        ("NaN in x", lambda: estimate(case, x_nan, y), errors.NonFiniteInputError, "1 NaN"),
        ("Inf in y", lambda: estimate(case, x, np.where(np.arange(len(y)) == 2, np.inf, y)),
         errors.NonFiniteInputError, "Inf"),
        ("constant x", lambda: estimate(case, np.full(len(y), 2.5), y),
         errors.ConstantColumnError, "constant"),
        ("length mismatch", lambda: estimate(case, x[:-1], y), errors.LengthMismatchError,
         "one row per sample"),
        ("3-D x", lambda: estimate(case, x.reshape(-1, 2, 2)[: len(x) // 4], y[: len(x) // 4]),
         errors.InvalidInputError, "shape"),
        ("strings", lambda: estimate(case, ["a"] * len(y), y), errors.NonNumericInputError,
         "numeric"),
        ("negative seed", lambda: estimate(case, x, y, random_state=-1),
         errors.InvalidParameterError, "random_state"),
        ("string seed", lambda: estimate(case, x, y, random_state="0"),
         errors.InvalidParameterError, "random_state"),
        ("negative n_bootstrap", lambda: estimate(case, x, y, n_bootstrap=-1),
         errors.InvalidParameterError, "n_bootstrap"),
        ("class: NaN in x", lambda: make_estimator(case).fit(x_nan, y),
         errors.NonFiniteInputError, "NaN"),
    ]
    if case.spec.supports_discrete_y:
        rows.append(("single class", lambda: estimate(case, x, np.zeros(len(x), int),
                                                      discrete_y=True),
                     errors.SingleClassError, "single class"))
    else:
        rows.append(("labels unsupported", lambda: estimate(case, x, (y > 0).astype(int),
                                                            discrete_y=True),
                     errors.InvalidParameterError, "discrete"))
    return rows


def check_bad_input(case: MethodCase) -> None:
    """Bad data and bad call parameters raise the documented error class with a message that
    names the problem (function API and estimator class)."""
    name = "check_bad_input"
    for label, call, error, fragment in _bad_inputs(case):
        try:
            call()
        except error as exc:
            if fragment not in str(exc):
                raise fail(case, name, f"{label}: message {str(exc)!r} lacks {fragment!r}") from exc
        except Exception as exc:
            raise fail(case, name, f"{label}: raised {type(exc).__name__} ({exc}), expected "
                                   f"{error.__name__}") from exc
        else:
            raise fail(case, name, f"{label}: no error, expected {error.__name__}")


# ------------------------------------------------------------------------------- scale
SCALES = (
    ("2^1000", 2.0**1000, 2.0**1000),
    ("2^-1000", 2.0**-1000, 2.0**-1000),
    ("1e200", 1e200, 1e200),
    ("1e-13", 1e-13, 1e-13),
    ("1e-300", 1e-300, 1e-300),
    ("1e300", 1e300, 1e300),
    ("mixed 1e200 / 1e-200", 1e200, 1e-200),
)


def check_scale_invariance(case: MethodCase) -> None:
    """Data multiplied by 1e+-300, 2^+-1000, 1e-13 or mixed factors give the unit-scale
    estimate (MI is scale invariant), with no numpy warnings and no "constant" rejection."""
    name, rtol = "check_scale_invariance", case.settings.scale_rtol
    x, y = functional_data(case, key="scale")
    ref = estimate(case, x, y, n_bootstrap=4)
    for label, fx, fy in SCALES:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            try:
                r = estimate(case, x * fx, y * fy, n_bootstrap=4)
            except (errors.DistmiError, RuntimeWarning, FloatingPointError) as exc:
                raise fail(case, name, f"x*{fx:g}, y*{fy:g} ({label}): {type(exc).__name__}: "
                                       f"{exc}") from exc
        for field, got, want in (("value", r.value, ref.value), ("std", r.std, ref.std)):
            if not same(got, want, rtol):
                raise fail(case, name, f"{label}: {field} {got!r} != unit-scale {want!r} "
                                       f"(rtol {rtol})")


# ----------------------------------------------------------------------------- devices
def check_devices(case: MethodCase) -> None:
    """``device`` takes the one vocabulary ('cpu', 'cuda', 'cuda:N', 'auto'); other names and
    absent CUDA devices raise :class:`InvalidParameterError` with the fix; CUDA, when
    present, gives the CPU numbers."""
    if not case.settings.has_device:
        return
    name = "check_devices"
    x, y = functional_data(case, key="device")
    cpu = estimate(case, x, y, device="cpu")
    auto = estimate(case, x, y, device="auto")
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not same(cpu.value, auto.value, case.settings.pairs_rtol):
        raise fail(case, name, f"device='auto' without CUDA gave {auto.value!r}, cpu "
                               f"{cpu.value!r}")
    for bad in ("tpu", "cuda:x", "CPU", "gpu"):
        try:
            estimate(case, x, y, device=bad)
        except errors.InvalidParameterError as exc:
            if "'cuda:N'" not in str(exc):
                raise fail(case, name, f"device={bad!r}: message lacks the vocabulary: "
                                       f"{exc}") from exc
        else:
            raise fail(case, name, f"device={bad!r} was accepted")
    if not cuda:
        try:
            estimate(case, x, y, device="cuda")
        except errors.InvalidParameterError as exc:
            if "device='cpu'" not in str(exc):
                raise fail(case, name, f"device='cuda' without CUDA: no fix named: {exc}") from exc
        else:
            raise fail(case, name, "device='cuda' was accepted without a CUDA device")
    else:
        extra = case.settings.device_params
        ref = estimate(case, x, y, device="cpu", **extra)
        for device in ("cuda", "cuda:0", "auto"):
            gpu = estimate(case, x, y, device=device, **extra)
            if abs(gpu.value - ref.value) > case.settings.device_atol:
                raise fail(case, name, f"device={device!r} gave {gpu.value!r}, cpu "
                                       f"{ref.value!r} (atol {case.settings.device_atol})")


