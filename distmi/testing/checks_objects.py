"""Conformance checks on objects: pickling for Ray, the estimator class, trust flags."""

from __future__ import annotations

import pickle
import warnings

from distmi.api import pairwise_mi
from distmi.core import errors
from distmi.estimators.base import MethodEstimator, MIEstimator
from distmi.testing.case import (
    SEED,
    MethodCase,
    estimate,
    fail,
    functional_data,
    make_estimator,
    same,
)
from distmi.testing.data import gaussian_pair
from distmi.testing.settings import TrustCase


# ---------------------------------------------------------------------------- pickling
def check_pickling(case: MethodCase) -> None:
    """The method, its estimator (fitted or not) and its results survive cloudpickle (what
    Ray ships to actors) and give the same numbers afterwards."""
    import cloudpickle

    name = "check_pickling"
    x, y = functional_data(case, key="pickle")
    spec = case.spec
    ref = estimate(case, x, y)
    copy = cloudpickle.loads(cloudpickle.dumps(spec))
    kw = {"n_bootstrap": 4, "random_state": 3, **case.settings.params}
    from distmi.core.validation import as_float_matrix

    again = copy.estimate(as_float_matrix(x), as_float_matrix(y), discrete_y=False, **kw)
    if not same(again.value, ref.value, case.settings.pairs_rtol):
        raise fail(case, name, f"the unpickled method gave {again.value!r}, not {ref.value!r}")
    result = pickle.loads(pickle.dumps(ref))
    if (result.value, result.std, result.ci) != (ref.value, ref.std, ref.ci) and not (
        same(result.value, ref.value, 0) and same(result.std, ref.std, 0)
    ):
        raise fail(case, name, "an MIResult changed through pickle")
    est = make_estimator(case)
    clone = cloudpickle.loads(cloudpickle.dumps(est))
    if clone.get_params().keys() != est.get_params().keys():
        raise fail(case, name, "the unfitted estimator lost parameters through pickling")
    est.fit(x, y)
    fitted = cloudpickle.loads(cloudpickle.dumps(est))
    if not same(fitted.mi_, est.mi_, 0):
        raise fail(case, name, "the fitted estimator changed mi_ through pickling")


# ------------------------------------------------------------------- estimator class
def check_estimator_class(case: MethodCase) -> None:
    """The estimator class follows the contract: parameters, ``clone``, ``set_params``,
    ``fit`` returning self with ``mi_``/``ci_``/``result_``/``status_`` equal to
    ``mutual_information``'s result."""
    from sklearn.base import clone

    name = "check_estimator_class"
    est = make_estimator(case)
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
        est = make_estimator(case)
    if hasattr(est, "mi_"):
        raise fail(case, name, "an unfitted estimator has mi_")
    x, y = functional_data(case, key="class")
    if est.fit(x, y) is not est:
        raise fail(case, name, "fit did not return self")
    ref = estimate(case, x, y)
    if not (same(est.mi_, ref.value, case.settings.pairs_rtol)
            and same(est.ci_[0], ref.ci[0], case.settings.pairs_rtol)):
        raise fail(case, name, f"fit gave mi_={est.mi_!r}, mutual_information {ref.value!r}")
    if est.result_.method != case.name or est.status_ != est.result_.status:
        raise fail(case, name, "result_/status_ do not describe the fit")
    if type(est).__name__ not in repr(est):
        raise fail(case, name, f"repr {repr(est)!r} does not name the class")


# ------------------------------------------------------------------------- trust flags
def _trustfunctional_data(case: MethodCase, trust: TrustCase):
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
    healthy = estimate(case, *functional_data(case, mi=0.3, key="trust"))
    if healthy.status != "ok":
        raise fail(case, name, f"a healthy estimate (0.3 nats, n={case.settings.n_samples}) "
                               f"has status {healthy.status!r}")
    for trust in case.settings.trust_cases:
        x, y = _trustfunctional_data(case, trust)
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
