"""Functional conformance checks: registry entry, parameters, results, batching, seeds, bad
input, scale, devices, pickling, the estimator class and trust flags.

Each check takes a :class:`MethodCase` and raises ``AssertionError`` naming the method, the
check and what went wrong; it returns nothing when the method conforms.
"""

from __future__ import annotations

import importlib
import json
import math
import pickle
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from distmi.api import mutual_information, pairwise_mi
from distmi.core import errors
from distmi.core.results import STATUSES, MIResult
from distmi.estimators.base import MethodEstimator, MIEstimator
from distmi.estimators.registry import MethodSpec, get_method
from distmi.testing.data import gaussian_columns, gaussian_pair, labelled
from distmi.testing.settings import CheckSettings, TrustCase, settings_for

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


def _data(case: MethodCase, mi: float = 0.5, key: str = "functional"):
    return gaussian_pair(case.settings.n_samples, mi, SEED, case.name, key)


def _same(a: float, b: float, rtol: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    return abs(a - b) <= rtol * max(1.0, abs(a), abs(b))


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
                 lambda: estimate(case, *_data(case), no_such_parameter=1)):
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
    x, y = _data(case)
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
                if not _same(got, want, rtol):
                    raise fail(case, name, f"pair ({i}, {j}){' with labels' if discrete else ''}: "
                                           f"batched {field} {got!r} != alone {want!r} "
                                           f"(rtol {rtol})")


def check_seed_determinism(case: MethodCase) -> None:
    """Same seed, same numbers; another seed, other numbers; ``random_state=None`` draws a
    fresh seed, records it in ``params`` and reproduces the result when passed back."""
    name = "check_seed_determinism"
    x, y = _data(case)

    def run(seed):
        return estimate(case, x, y, n_bootstrap=6, random_state=seed)

    a, b = run(7), run(7)
    if (a.value, a.std, a.ci) != (b.value, b.std, b.ci) and not (
        _same(a.value, b.value, 0) and _same(a.std, b.std, 0)
    ):
        raise fail(case, name, f"the same seed gave {a.value!r} then {b.value!r}")
    if case.settings.seed_sensitive:
        c = run(8)
        if _same(a.value, c.value, 0) and _same(a.std, c.std, 0):
            raise fail(case, name, "seeds 7 and 8 gave identical value and std: the seed "
                                   "does not reach the method's randomness")
    fresh = run(None)
    seed = fresh.params.get("random_state")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise fail(case, name, f"random_state=None recorded {seed!r} in params, not the "
                               "integer seed it drew")
    again = run(seed)
    if not (_same(fresh.value, again.value, 0) and _same(fresh.std, again.std, 0)):
        raise fail(case, name, f"the recorded seed {seed} did not reproduce the result "
                               f"({fresh.value!r} vs {again.value!r})")
    if run(None).params.get("random_state") == seed:
        raise fail(case, name, "two random_state=None calls drew the same seed")


# ---------------------------------------------------------------------------- bad input
def _bad_inputs(case: MethodCase) -> list[tuple[str, Any, type, str]]:
    x, y = _data(case)
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
        ("class: NaN in x", lambda: _estimator(case).fit(x_nan, y),
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
    x, y = _data(case, key="scale")
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
            if not _same(got, want, rtol):
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
    x, y = _data(case, key="device")
    cpu = estimate(case, x, y, device="cpu")
    auto = estimate(case, x, y, device="auto")
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not _same(cpu.value, auto.value, case.settings.pairs_rtol):
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
        gpu = estimate(case, x, y, device="cuda")
        if abs(gpu.value - cpu.value) > 1e-3 + 1e-3 * abs(cpu.value):
            raise fail(case, name, f"cuda gave {gpu.value!r}, cpu {cpu.value!r}")


# ---------------------------------------------------------------------------- pickling
def check_pickling(case: MethodCase) -> None:
    """The method, its estimator (fitted or not) and its results survive cloudpickle (what
    Ray ships to actors) and give the same numbers afterwards."""
    import cloudpickle

    name = "check_pickling"
    x, y = _data(case, key="pickle")
    spec = case.spec
    ref = estimate(case, x, y)
    copy = cloudpickle.loads(cloudpickle.dumps(spec))
    kw = {"n_bootstrap": 4, "random_state": 3, **case.settings.params}
    from distmi.core.validation import as_float_matrix

    again = copy.estimate(as_float_matrix(x), as_float_matrix(y), discrete_y=False, **kw)
    if not _same(again.value, ref.value, case.settings.pairs_rtol):
        raise fail(case, name, f"the unpickled method gave {again.value!r}, not {ref.value!r}")
    result = pickle.loads(pickle.dumps(ref))
    if (result.value, result.std, result.ci) != (ref.value, ref.std, ref.ci) and not (
        _same(result.value, ref.value, 0) and _same(result.std, ref.std, 0)
    ):
        raise fail(case, name, "an MIResult changed through pickle")
    est = _estimator(case)
    clone = cloudpickle.loads(cloudpickle.dumps(est))
    if clone.get_params().keys() != est.get_params().keys():
        raise fail(case, name, "the unfitted estimator lost parameters through pickling")
    est.fit(x, y)
    fitted = cloudpickle.loads(cloudpickle.dumps(est))
    if not _same(fitted.mi_, est.mi_, 0):
        raise fail(case, name, "the fitted estimator changed mi_ through pickling")


# ------------------------------------------------------------------- estimator class
def _estimator_class(case: MethodCase) -> type[MIEstimator]:
    target = case.spec.estimator_class
    if target is None:
        return MethodEstimator
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def _estimator(case: MethodCase) -> MIEstimator:
    cls = _estimator_class(case)
    return cls.for_method(case.name, n_bootstrap=4, random_state=3, **case.settings.params)


def check_estimator_class(case: MethodCase) -> None:
    """The estimator class follows the contract: parameters, ``clone``, ``set_params``,
    ``fit`` returning self with ``mi_``/``ci_``/``result_``/``status_`` equal to
    ``mutual_information``'s result."""
    from sklearn.base import clone

    name = "check_estimator_class"
    est = _estimator(case)
    if not isinstance(est, MIEstimator):
        raise fail(case, name, f"{type(est).__name__} does not derive from MIEstimator")
    params = est.get_params()
    missing = {"discrete_y", "n_bootstrap", "random_state", *case.settings.params} - set(params)
    if missing:
        raise fail(case, name, f"get_params() lacks {sorted(missing)}")
    twin = clone(est)
    if twin is est or twin.get_params() != params:
        raise fail(case, name, "sklearn.base.clone did not give an equal, separate estimator")
    try:
        est.set_params(no_such_parameter=1)
    except errors.InvalidParameterError:
        pass
    else:
        if not isinstance(est, MethodEstimator):
            raise fail(case, name, "set_params accepted an unknown parameter")
        est = _estimator(case)
    if hasattr(est, "mi_"):
        raise fail(case, name, "an unfitted estimator has mi_")
    x, y = _data(case, key="class")
    if est.fit(x, y) is not est:
        raise fail(case, name, "fit did not return self")
    ref = estimate(case, x, y)
    if not (_same(est.mi_, ref.value, case.settings.pairs_rtol)
            and _same(est.ci_[0], ref.ci[0], case.settings.pairs_rtol)):
        raise fail(case, name, f"fit gave mi_={est.mi_!r}, mutual_information {ref.value!r}")
    if est.result_.method != case.name or est.status_ != est.result_.status:
        raise fail(case, name, "result_/status_ do not describe the fit")
    if type(est).__name__ not in repr(est):
        raise fail(case, name, f"repr {repr(est)!r} does not name the class")


# ------------------------------------------------------------------------- trust flags
def _trust_data(case: MethodCase, trust: TrustCase):
    if trust.data == "huge":
        x, y = gaussian_pair(trust.n_samples, 0.3, SEED, case.name, "trust")
        return 1e30 * x, y
    if trust.data == "independent":
        x, _ = gaussian_pair(trust.n_samples, 0.0, SEED, case.name, "trust-x")
        _, y = gaussian_pair(trust.n_samples, 0.0, SEED, case.name, "trust-y")
        return x, y
    return gaussian_pair(trust.n_samples, 4.6, SEED, case.name, "trust")


def check_trust_flags(case: MethodCase) -> None:
    """Planted failures are flagged (``MIResult.status``, also a ``pairwise_mi`` column) and
    a healthy estimate is ``"ok"``."""
    name = "check_trust_flags"
    healthy = estimate(case, *_data(case, mi=0.3, key="trust"))
    if healthy.status != "ok":
        raise fail(case, name, f"a healthy estimate (0.3 nats, n={case.settings.n_samples}) "
                               f"has status {healthy.status!r}")
    for trust in case.settings.trust_cases:
        x, y = _trust_data(case, trust)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # divergence warns as well
            r = estimate(case, x, y, **trust.params)
            table = pairwise_mi(x[:, None], y[:, None], method=case.name, n_bootstrap=4,
                                random_state=3, **{**case.settings.params, **trust.params})
        if r.status != trust.status:
            raise fail(case, name, f"planted {trust.data!r} with {trust.params}: status "
                                   f"{r.status!r} (value {r.value:.3f}), expected "
                                   f"{trust.status!r}")
        if "status" not in table or table["status"].iloc[0] != trust.status:
            raise fail(case, name, "pairwise_mi does not carry the status column")
