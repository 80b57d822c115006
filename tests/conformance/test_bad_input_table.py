"""Bad input to estimators and job specs: one table of (input, error class, message fragment).

Every row is a call a user can make; the error must be a ``distmi.core.errors`` class whose
message names the problem (and, where there is one, the fix). A second table holds inputs
that used to be refused or mis-estimated and must now be accepted (scale extremes).
"""

from __future__ import annotations

import numpy as np
import pytest

import distmi
from distmi.core import errors as E
from distmi.estimators.base import MethodEstimator
from distmi.estimators.gmm import GMMMI
from distmi.estimators.ksg import KSG
from distmi.estimators.neural import NeuralMI
from distmi.estimators.registry import MethodSpec, register_method
from distmi.estimators.sliced import SlicedMI
from distmi.jobs.spec import check_estimator, load_spec, parse_spec

RNG = np.random.default_rng(0)
X = RNG.normal(size=300)
Y = 0.6 * X + 0.8 * RNG.normal(size=300)
BASE = {"dataset": {"path": "out/x"}, "targets": ["label"], "output": "out/r"}
JOB = """\
name: job
dataset: {path: out/x}
targets: [label]
output: out/r
"""


def mi(*args, **kw):
    return distmi.mutual_information(*args, **kw)


def yaml_spec(text: str):
    """Load a job file holding ``text`` (written to a temporary file)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "job.yaml"
        path.write_text(text)
        return load_spec(path)


def job_params(method: str, **params):
    return check_estimator(parse_spec({**BASE, "estimator": {"method": method, "params": params}}))


def _plugin(name: str, **kw):
    return register_method(MethodSpec(name, lambda *a, **k: None, **kw))


CASES = [
    # ---- job specs: duplicate keys, strict types, YAML 1.2 scalars ------------------------
    pytest.param(lambda: yaml_spec(JOB + "seed: 1\nseed: 2\n"), E.SpecError,
                 "key 'seed' is given twice in one mapping (lines 5 and 6)", id="dup-top-key"),
    pytest.param(lambda: yaml_spec(JOB + "scaling:\n  workers: 2\n  executor: local\n"
                                   "  workers: 4\n"), E.SpecError,
                 "key 'workers' is given twice in one mapping (lines 6 and 8)",
                 id="dup-nested-key"),
    pytest.param(lambda: yaml_spec(JOB + "seed: '7'\n"), E.SpecError,
                 "seed: expected an integer, written without quotes (e.g. 7), got '7'",
                 id="quoted-int"),
    pytest.param(lambda: yaml_spec(JOB + "n_bootstrap: yes\n"), E.SpecError,
                 "n_bootstrap: expected an integer", id="yes-as-int"),
    pytest.param(lambda: yaml_spec(JOB.replace("{path: out/x}", "{path: out/x, verify: yes}")),
                 E.SpecError, "dataset.verify: expected true or false (YAML 1.2: yes/no/on/off",
                 id="yes-as-bool"),
    pytest.param(lambda: yaml_spec(JOB + "scaling: {spread: on}\n"), E.SpecError,
                 "scaling.spread: expected true or false", id="on-as-bool"),
    pytest.param(lambda: parse_spec({**BASE, "scaling": {"spread": 1}}), E.SpecError,
                 "scaling.spread: expected true or false", id="one-as-bool"),
    pytest.param(lambda: parse_spec({**BASE, "n_bootstrap": 2.0}), E.SpecError,
                 "n_bootstrap: expected an integer", id="float-as-int"),
    pytest.param(lambda: parse_spec({**BASE, "scaling": {"workers": "2"}}), E.SpecError,
                 "scaling.workers: expected an integer", id="string-workers"),
    pytest.param(lambda: parse_spec({**BASE, "seed": True}), E.SpecError,
                 "seed: expected an integer", id="bool-seed"),
    pytest.param(lambda: yaml_spec(JOB + "seed: 0:30\n"), E.SpecError,
                 "got '0:30'", id="sexagesimal"),
    pytest.param(lambda: yaml_spec(JOB + "dataset: [unclosed\n"), E.SpecError,
                 "not valid YAML", id="yaml-syntax"),
    pytest.param(lambda: parse_spec({**BASE, "seed": object()}), E.SpecError,
                 "not plain data", id="python-object"),
    # ---- a method's own parameters, checked by `distmi validate` -----------------------
    pytest.param(lambda: job_params("gmm", max_componentz=4), E.InvalidParameterError,
                 "estimator.params of method 'gmm': invalid GMM-MI parameters: unknown GMM-MI "
                 "parameter 'max_componentz'; allowed:", id="job-max_componentz"),
    pytest.param(lambda: job_params("gmm", max_components="7"), E.InvalidParameterError,
                 "max_components: Input should be a valid integer (got '7')", id="job-gmm-'7'"),
    pytest.param(lambda: job_params("ksg", k=True), E.InvalidParameterError,
                 "k: Input should be a valid integer (got True)", id="job-ksg-bool-k"),
    pytest.param(lambda: job_params("ksg", device="tpu"), E.InvalidParameterError,
                 "device must be 'cpu', 'cuda', 'cuda:N'", id="job-bad-device"),
    pytest.param(lambda: job_params("sliced", base="gmm", gmm_params={"n_compnents": 1}),
                 E.InvalidParameterError, "unknown GMM-MI parameter 'n_compnents'",
                 id="job-sliced-gmm-params"),
    pytest.param(lambda: job_params("smile", learning_rate="0.001"), E.InvalidParameterError,
                 "learning_rate must be a number, got '0.001'", id="job-neural-string-float"),
    pytest.param(lambda: check_estimator(parse_spec({**BASE, "n_slices": 64})),
                 E.InvalidParameterError, "unknown GMM-MI parameter 'n_slices'",
                 id="job-n_slices-for-gmm"),
    pytest.param(lambda: job_params("gmn"), E.UnknownMethodError, "Did you mean 'gmm'",
                 id="job-unknown-method"),
    # ---- devices: one vocabulary everywhere ---------------------------------------------
    pytest.param(lambda: GMMMI(device="tpu", n_bootstrap=0).fit(X, Y), E.InvalidParameterError,
                 "device: Value error, device must be 'cpu', 'cuda', 'cuda:N'", id="gmm-tpu"),
    pytest.param(lambda: KSG(device="cuda:x").fit(X, Y), E.InvalidParameterError,
                 "got 'cuda:x'", id="ksg-cuda-x"),
    pytest.param(lambda: SlicedMI(device="GPU").fit(X[:, None], Y), E.InvalidParameterError,
                 "got 'GPU'", id="sliced-GPU"),
    pytest.param(lambda: NeuralMI("smile", device="gpu").fit(X, Y), E.InvalidParameterError,
                 "device must be 'cpu', 'cuda', 'cuda:N' (N = 0, 1, ...) or 'auto', got 'gpu'",
                 id="neural-gpu"),
    pytest.param(lambda: KSG(device="cuda:99", n_bootstrap=0).fit(X, Y),
                 E.InvalidParameterError, "use device='cpu', device='auto'", id="absent-cuda"),
    # ---- seeds and call parameters ------------------------------------------------------
    pytest.param(lambda: mi(X, Y, method="ksg", random_state=-1), E.InvalidParameterError,
                 "random_state must be in [0, 2**63), got -1", id="seed-negative"),
    pytest.param(lambda: mi(X, Y, method="ksg", random_state=2**63), E.InvalidParameterError,
                 "random_state must be in [0, 2**63)", id="seed-too-large"),
    pytest.param(lambda: mi(X, Y, method="ksg", random_state="0"), E.InvalidParameterError,
                 "random_state must be a non-negative integer or None, got '0'",
                 id="seed-string"),
    pytest.param(lambda: KSG(random_state=True).fit(X, Y), E.InvalidParameterError,
                 "got True (bool)", id="seed-bool"),
    pytest.param(lambda: GMMMI(random_state=1.5).fit(X, Y), E.InvalidParameterError,
                 "got 1.5 (float)", id="seed-float"),
    pytest.param(lambda: KSG(n_bootstrap=-1).fit(X, Y), E.InvalidParameterError,
                 "n_bootstrap must be >= 0, got -1", id="n_bootstrap-negative"),
    pytest.param(lambda: KSG(discrete_y="yes").fit(X, Y), E.InvalidParameterError,
                 "discrete_y must be True or False, got 'yes'", id="discrete_y-yes"),
    # ---- parameter names and types of estimator classes --------------------------------
    pytest.param(lambda: GMMMI().set_params(max_componentz=4), E.InvalidParameterError,
                 "unknown GMMMI parameter 'max_componentz'; allowed: [", id="gmm-set-params"),
    pytest.param(lambda: SlicedMI(n_slicez=10).fit(X[:, None], Y), E.InvalidParameterError,
                 "unknown sliced-MI parameter 'n_slicez'", id="sliced-unknown"),
    pytest.param(lambda: NeuralMI("mime").fit(X, Y), E.InvalidParameterError,
                 "bound must be one of ['mine', 'nwj', 'infonce', 'smile'], got 'mime'",
                 id="neural-bound"),
    pytest.param(lambda: KSG(k="7").fit(X, Y), E.InvalidParameterError,
                 "k: Input should be a valid integer (got '7')", id="ksg-k-'7'"),
    pytest.param(lambda: KSG(k=3.5).fit(X, Y), E.InvalidParameterError,
                 "k: Input should be a valid integer (got 3.5)", id="ksg-k-float"),
    pytest.param(lambda: KSG().fit(X, Y, z=X), E.InvalidParameterError,
                 "does not estimate conditional MI", id="ksg-z"),
    pytest.param(lambda: MethodEstimator("nope").fit(X, Y), E.UnknownMethodError,
                 "unknown MI method 'nope'", id="estimator-unknown-method"),
    # ---- data at the extremes of scale -------------------------------------------------
    pytest.param(lambda: mi(np.full(300, 3e-300), Y, method="ksg"), E.ConstantColumnError,
                 "x column 0 is constant", id="constant-at-1e-300"),
    pytest.param(lambda: mi(np.r_[np.zeros(299), 1e-30 * 1e-12], Y + 1e200, method="ksg"),
                 E.ConstantColumnError, "constant", id="spread-below-rounding"),
    pytest.param(lambda: mi(np.r_[X[:-1] * 1e300, np.inf], Y, method="ksg"),
                 E.NonFiniteInputError, "0 NaN and 1 Inf values", id="overflowed-input"),
    # ---- registering plug-ins -----------------------------------------------------------
    pytest.param(lambda: _plugin("MyMethod"), E.InvalidParameterError,
                 "lower-case", id="plugin-upper-case"),
    pytest.param(lambda: _plugin("ksg"), E.InvalidParameterError,
                 "method 'ksg' is already registered; pass overwrite=True", id="plugin-taken"),
]


@pytest.mark.parametrize(("call", "error", "fragment"), CASES)
def test_bad_input_is_refused_with_a_clear_message(call, error, fragment):
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value), str(info.value)
    assert isinstance(info.value, E.DistmiError)


ACCEPTED = [
    pytest.param(lambda: mi(X * 1e-13, Y * 1e-13, method="ksg", n_bootstrap=0),
                 id="1e-13-is-not-constant"),
    pytest.param(lambda: mi(X * 1e200, Y * 1e200, method="ksg", n_bootstrap=0),
                 id="1e200-ksg"),
    pytest.param(lambda: mi(X * 1e-300, Y * 1e300, method="gmm", n_bootstrap=0,
                            n_components=1, n_inits=1), id="1e-300-and-1e300-gmm"),
    pytest.param(lambda: mi(np.c_[X * 1e200, X**2], Y, method="sliced", n_slices=8,
                            n_bootstrap=0, base="gaussian"), id="mixed-columns-sliced"),
]


@pytest.mark.parametrize("call", ACCEPTED)
def test_scale_extremes_are_accepted_without_warnings(call):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = call()
    assert np.isfinite(result.value)
