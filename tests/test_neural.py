"""Neural MI bounds (MINE, NWJ, InfoNCE, SMILE) and their grouped training.

Ground truth: bivariate Gaussians, I = -1/2 log(1 - rho^2). Tolerances come from the
estimators' own error: at N=5000 the held-out bootstrap std is ~0.017 nats and the measured
bias over 12 datasets was -0.008 to -0.016 nats (docs/neural.md), so 0.05 nats is ~2 std plus
bias with margin. Runs use small critics and few steps wherever accuracy is not under test.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import distmi
from distmi.core.errors import (
    ConstantColumnError,
    InvalidParameterError,
    NonFiniteInputError,
    TooFewSamplesError,
)
from distmi.estimators.neural import NeuralMI, resolve_params
from distmi.kernels import bounds
from distmi.kernels.critic_backprop import objective_and_grad
from distmi.kernels.critics import (
    CriticSpec,
    init_flat,
    joint_and_marginal_scores,
    paired_scores,
    score_matrix,
)
from distmi.kernels.grouped_training import TrainConfig, _adam_step
from distmi.kernels.workspace import Workspace

BOUNDS = ("mine", "nwj", "infonce", "smile")
RHO_HALF_NAT = math.sqrt(1.0 - math.exp(-1.0))  # I(X;Y) = 0.5 nats
FAST = dict(hidden=(8, 8), batch_size=32, max_steps=150, eval_every=25, patience=2,
            n_bootstrap=20)


def gaussian_pair(n: int, rho: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return x, rho * x + math.sqrt(1.0 - rho**2) * rng.normal(size=n)


# --------------------------------------------------------------------------- accuracy
@pytest.mark.parametrize("bound", BOUNDS)
def test_gaussian_accuracy_invariance_and_independence(bound):
    """One grouped run per bound: (x, y) with I = 0.5, (exp x, y) with the same I, (x, z)
    independent."""
    x, y = gaussian_pair(5000, RHO_HALF_NAT, seed=0)
    z = np.random.default_rng(1).normal(size=5000)
    X, Y = np.c_[x, np.exp(x)], np.c_[y, z]
    df = distmi.pairwise_mi(X, Y, method=bound, pairs=[(0, 0), (1, 0), (0, 1)])
    gauss, mapped, indep = (df.iloc[k] for k in range(3))
    assert abs(gauss.estimate - 0.5) < 0.05
    assert 0.005 < gauss["std"] < 0.05  # the stated error is the held-out sampling error
    # MI is invariant under the invertible map x -> exp(x); both estimate the same 0.5 nats
    assert abs(mapped.estimate - 0.5) < 0.05
    assert abs(mapped.estimate - gauss.estimate) < 3 * math.hypot(gauss["std"], mapped["std"])
    # independence: the held-out bound of a near-constant critic is ~0
    assert abs(indep.estimate) < 0.02
    assert indep.stop_reason == "patience"  # nothing to learn, early stopping fires


def test_infonce_never_above_log_batch_size():
    """True I = 5.4 nats; InfoNCE with B = 8 contrasts can report at most log 8 = 2.08."""
    x, y = gaussian_pair(2000, 0.99999, seed=2)
    r = distmi.mutual_information(x, y, method="infonce", critic="concat", batch_size=8,
                                  max_steps=400, hidden=(16, 16), learning_rate=0.01,
                                  n_bootstrap=50)
    assert r.value <= math.log(8)
    assert r.ci_high <= math.log(8)
    assert r.value > math.log(8) - 0.3  # the optimal critic's InfoNCE is ~log 8 here
    assert r.status == "capped"  # and the result says so


def test_discrete_labels_match_numerical_truth():
    """x | y=c ~ N(2c, 1), p(c) = 1/2: I = h(mixture) - 1/2 log(2 pi e) = 0.3368 nats."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=3000)
    x = 2.0 * labels + rng.normal(size=3000)
    r = distmi.mutual_information(x, labels, method="smile", discrete_y=True, max_steps=800)
    assert abs(r.value - 0.3368) < max(0.05, 3 * r.std)
    est = NeuralMI("smile", discrete_y=True, **FAST).fit(x, labels)
    grouped = distmi.pairwise_mi(np.c_[x, x**3], labels, method="smile", discrete_y=True,
                                 **FAST)
    assert grouped.estimate.iloc[0] == pytest.approx(est.mi_, abs=1e-4)


def test_small_vector_variables():
    """Two independent Gaussian coordinates with rho = 0.8 each: I = -log(1 - 0.64) = 1.02."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4000, 2))
    y = 0.8 * x + 0.6 * rng.normal(size=(4000, 2))
    r = distmi.mutual_information(x, y, method="infonce", n_bootstrap=30, max_steps=800)
    truth = -math.log(1 - 0.64)
    # measured: 0.958 +- 0.022 (bias ~ -0.06 from the short run and InfoNCE with B = 128)
    assert abs(r.value - truth) < 0.1
    assert r.diagnostics["critic"] == "separable"


# ------------------------------------------------------------ grouped == one at a time
@pytest.mark.parametrize("bound", BOUNDS)
def test_grouped_pair_equals_pair_trained_alone(bound):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(600, 3))
    Y = np.c_[X[:, 0] + rng.normal(size=600), rng.normal(size=600)]
    pairs = [(0, 0), (2, 1), (1, 0), (0, 1)]
    kw = dict(method=bound, dtype="float64", **{**FAST, "max_steps": 200, "eval_every": 20})
    df = distmi.pairwise_mi(X, Y, pairs=pairs, **kw)
    for row in df.itertuples():
        alone = distmi.mutual_information(X[:, row.x_index], Y[:, row.y_index], **kw)
        assert row.estimate == pytest.approx(alone.value, rel=1e-9, abs=1e-12)
        assert row.std == pytest.approx(alone.std, rel=1e-7, abs=1e-12)
        assert row.steps == alone.diagnostics["steps"]
        assert row.stop_reason == alone.diagnostics["stop_reason"]
    if bound != "nwj":  # NWJ keeps improving on independent pairs (it must learn T = 1)
        assert len(set(df.steps)) > 1  # pairs stopped at different steps inside one group


def test_group_size_does_not_change_results():
    rng = np.random.default_rng(6)
    X, Y = rng.normal(size=(500, 4)), rng.normal(size=(500, 2))
    kw = dict(method="smile", dtype="float64", **FAST)
    one_group = distmi.pairwise_mi(X, Y, **kw)
    small_groups = distmi.pairwise_mi(X, Y, group_size=3, **kw)
    assert len(one_group) == 8
    np.testing.assert_allclose(one_group.estimate, small_groups.estimate, rtol=1e-9)


def test_divergence_is_reported_per_pair_and_does_not_poison_the_group():
    """An unstandardised 1e30-scaled column makes NWJ's e^(T-1) overflow on the first step."""
    x, y = gaussian_pair(600, 0.7, seed=7)
    X = np.c_[x, 1e30 * x]
    kw = dict(method="nwj", standardize=False, batch_size=64, max_steps=100, n_bootstrap=10)
    with pytest.warns(RuntimeWarning, match="1 of 2 nwj critic"):
        df = distmi.pairwise_mi(X, y, **kw)
    good, bad = df.iloc[0], df.iloc[1]
    assert bool(bad.diverged) and bad.stop_reason == "diverged" and bad.status == "diverged"
    assert good.status == "ok"
    assert bad.diverged_at_step == 1 and bad.steps == 0 and math.isnan(bad.estimate)
    assert not bool(good.diverged) and good.steps == 100
    alone = distmi.mutual_information(x, y, **kw)
    assert good.estimate == pytest.approx(alone.value, abs=1e-4)  # float32 default


def test_same_seed_same_numbers_and_seed_matters():
    x, y = gaussian_pair(500, 0.6, seed=8)
    a = distmi.mutual_information(x, y, method="mine", random_state=3, **FAST)
    b = distmi.mutual_information(x, y, method="mine", random_state=3, **FAST)
    c = distmi.mutual_information(x, y, method="mine", random_state=4, **FAST)
    assert a.value == b.value and a.std == b.std
    assert a.value != c.value
    assert a.params["random_state"] == 3 and a.unit == "nat"


def test_trust_status_rules():
    """diverged > negative (below -max(0.05, 3 std)) > capped (InfoNCE past the point where
    its log B ceiling costs 0.1 nats) > ok."""
    from distmi.estimators.neural import infonce_cap_threshold, trust_status

    assert trust_status("mine", float("nan"), float("nan"), True, 128) == "diverged"
    assert trust_status("mine", -0.2, 0.02, False, 128) == "negative"
    assert trust_status("mine", -0.2, 0.1, False, 128) == "ok"  # within 3 std of zero
    assert trust_status("nwj", -0.06, float("nan"), False, 128) == "negative"
    assert trust_status("nwj", -0.04, 0.001, False, 128) == "ok"  # within the 0.05 margin
    # the ceiling: I - InfoNCE ~ log(1 + (e^I - 1) / B) for the optimal critic
    for b in (8, 128, 1024):
        v = infonce_cap_threshold(b)
        implied_mi = -math.log((b * math.exp(-v) - 1.0) / (b - 1.0))
        assert implied_mi - v == pytest.approx(0.1, rel=1e-9)
    assert infonce_cap_threshold(8) == pytest.approx(0.5105, abs=1e-4)
    assert infonce_cap_threshold(128) == pytest.approx(2.5715, abs=1e-4)
    assert trust_status("infonce", 2.6, 0.01, False, 128) == "capped"
    assert trust_status("infonce", 2.5, 0.01, False, 128) == "ok"
    assert trust_status("smile", 9.0, 0.01, False, 8) == "ok"  # only InfoNCE has the ceiling


# ------------------------------------------------------------------- sklearn-style class
def test_neural_mi_class():
    x, y = gaussian_pair(500, 0.6, seed=9)
    est = NeuralMI(bound="nwj", random_state=2, **FAST)
    assert est.get_params()["hidden"] == (8, 8)
    assert est.fit(x, y) is est
    ref = distmi.mutual_information(x, y, method="nwj", random_state=2, **FAST)
    assert est.mi_ == ref.value and est.mi_std_ == ref.std and est.ci_ == ref.ci
    assert est.set_params(bound="smile").estimate(x, y).method == "smile"
    with pytest.raises(InvalidParameterError, match="allowed parameters"):
        NeuralMI(bound="mine", hidde=(8,)).fit(x, y)


# ----------------------------------------------------------------------------- bad input
def test_too_few_samples_for_the_batch_size():
    x, y = gaussian_pair(100, 0.5, seed=10)
    with pytest.raises(TooFewSamplesError, match=r"batch_size=128 .* needs at least 256"):
        distmi.mutual_information(x, y, method="mine")
    with pytest.raises(TooFewSamplesError, match="lower batch_size"):
        distmi.mutual_information(x, y, method="infonce", batch_size=40, holdout_fraction=0.2)


@pytest.mark.parametrize(
    ("bound", "params", "match"),
    [
        ("mine", {"hiden": 3}, r"unknown parameter\(s\) \['hiden'\] for method 'mine'"),
        ("mine", {"clip": 5.0}, "clip SMILE-only"),
        ("infonce", {"n_negatives": 4}, "n_negatives not for InfoNCE"),
        ("nwj", {"holdout_fraction": 1.0}, "holdout_fraction must be strictly between"),
        ("nwj", {"learning_rate": 0.0}, r"learning_rate must be > 0.0, got 0.0; the default"),
        ("smile", {"smoothing": 0.0}, r"smoothing must be > 0.0 and <= 1.0"),
        ("smile", {"hidden": (8, 0)}, r"hidden width must be"),
        ("smile", {"hidden": "wide"}, "hidden must be a positive int"),
        ("mine", {"critic": "bilinear"}, r"critic must be one of \['concat', 'separable'\]"),
        ("mine", {"device": "tpu"}, r"device must be 'cpu', 'cuda', 'cuda:N'"),
        ("mine", {"learning_rate": "0.001"}, r"learning_rate must be a number, got '0.001'"),
        ("mine", {"dtype": "float16"}, r"dtype must be one of"),
        ("mine", {"standardize": "yes"}, "standardize must be True or False"),
        ("mine", {"batch_size": 1}, "batch_size must be >= 2"),
    ],
)
def test_invalid_parameters_name_the_problem(bound, params, match):
    with pytest.raises(InvalidParameterError, match=match):
        resolve_params(bound, params)


def test_bad_data_is_rejected_before_training():
    x, y = gaussian_pair(300, 0.5, seed=11)
    x_nan = x.copy()
    x_nan[5] = np.nan
    with pytest.raises(NonFiniteInputError, match="1 NaN"):
        distmi.mutual_information(x_nan, y, method="mine")
    with pytest.raises(ConstantColumnError, match="constant"):
        distmi.pairwise_mi(np.c_[x, np.ones(300)], y, method="smile")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_request_without_a_device_says_how_to_fix():
    x, y = gaussian_pair(300, 0.5, seed=12)
    with pytest.raises(InvalidParameterError, match="device='cpu'"):
        distmi.mutual_information(x, y, method="mine", device="cuda", **FAST)
    r = distmi.mutual_information(x, y, method="mine", device="auto", **FAST)
    assert r.diagnostics["device"] == "cpu"


@pytest.mark.gpu
def test_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    x, y = gaussian_pair(600, 0.7, seed=13)
    kw = dict(method="smile", dtype="float64", **FAST)
    cpu = distmi.mutual_information(x, y, device="cpu", **kw)
    gpu = distmi.mutual_information(x, y, device="cuda", **kw)
    assert gpu.diagnostics["device"] == "cuda"
    assert gpu.value == pytest.approx(cpu.value, abs=1e-6)


# ------------------------------------------------------------------------------ kernels
def test_bound_identities_on_random_scores():
    gen = torch.Generator().manual_seed(0)
    tj = torch.randn(5, 40, generator=gen, dtype=torch.float64)
    tm = torch.randn(5, 40, generator=gen, dtype=torch.float64)
    # e^(c-1) >= c for all c, so DV is never below NWJ for the same critic
    assert torch.all(bounds.dv_value(tj, tm) >= bounds.nwj_value(tj, tm))
    # DV is invariant to T + const, NWJ is tight only at the right constant
    torch.testing.assert_close(bounds.dv_value(tj + 3.0, tm + 3.0), bounds.dv_value(tj, tm))
    # SMILE with a clip wider than every score is DV; a tight clip changes it
    torch.testing.assert_close(bounds.smile_value(tj, tm, 100.0), bounds.dv_value(tj, tm))
    assert not torch.allclose(bounds.smile_value(tj, tm, 0.1), bounds.dv_value(tj, tm))
    scores = 10.0 * torch.randn(5, 16, 16, generator=gen, dtype=torch.float64)
    assert torch.all(bounds.infonce_value(scores) <= math.log(16))
    uniform = torch.full((1, 40), 1 / 40, dtype=torch.float64)
    for name, ref in [("mine", bounds.dv_value(tj, tm)), ("nwj", bounds.nwj_value(tj, tm))]:
        torch.testing.assert_close(bounds.weighted_values(name, tj, tm, uniform)[:, 0], ref)


def test_mine_surrogate_has_the_moving_average_gradient():
    """grad = mean(grad T_joint) - sum_i e^(T_i) grad T_i / (M * m_t)."""
    gen = torch.Generator().manual_seed(1)
    tj = torch.randn(2, 10, generator=gen, dtype=torch.float64, requires_grad=True)
    tm = torch.randn(2, 10, generator=gen, dtype=torch.float64, requires_grad=True)
    log_ema = torch.tensor([0.3, -0.2], dtype=torch.float64)
    g_j, g_m = torch.autograd.grad(bounds.mine_surrogate(tj, tm, log_ema).sum(), (tj, tm))
    torch.testing.assert_close(g_j, torch.full_like(tj, 0.1))
    torch.testing.assert_close(g_m, -(tm.detach().exp() / 10) / log_ema.exp()[:, None])
    ema = bounds.update_log_ema(log_ema, tm, alpha=0.25, first=False)
    expected = torch.log(0.75 * log_ema.exp() + 0.25 * tm.detach().exp().mean(1))
    torch.testing.assert_close(ema, expected)


@pytest.mark.parametrize("kind", ["concat", "separable"])
def test_grouped_critic_rows_are_independent_networks(kind):
    spec = CriticSpec(kind, dx=1, dy=2, hidden=(5, 4), embed_dim=3)
    gen = torch.Generator().manual_seed(2)
    theta = torch.randn(3, spec.n_params, generator=gen, dtype=torch.float64)
    x = torch.randn(3, 6, 1, generator=gen, dtype=torch.float64)
    y = torch.randn(3, 6, 2, generator=gen, dtype=torch.float64)
    grouped = paired_scores(spec, theta, x, y)
    for p in range(3):
        alone = paired_scores(spec, theta[p : p + 1], x[p : p + 1], y[p : p + 1])
        torch.testing.assert_close(grouped[p], alone[0])
    matrix = score_matrix(spec, theta, x, y)
    torch.testing.assert_close(torch.diagonal(matrix, dim1=1, dim2=2), grouped)
    t_joint, t_marg = joint_and_marginal_scores(spec, theta, x, y)
    torch.testing.assert_close(t_joint, grouped)
    torch.testing.assert_close(t_marg, matrix[:, torch.arange(6), (torch.arange(6) + 1) % 6])
    init = init_flat(spec, seed=5)
    assert init.shape == (spec.n_params,)
    torch.testing.assert_close(init, init_flat(spec, seed=5))
    bound = 1 / math.sqrt(3)  # first layer fan-in of the concat critic is dx + dy = 3
    assert kind != "concat" or float(init[: 3 * 5].abs().max()) <= bound


def _autograd_objective(spec, bound, theta, x, y, log_ema):
    """Reference: the training objective built from the autograd-traced critics."""
    if bound == "infonce":
        return bounds.infonce_value(score_matrix(spec, theta, x, y)), log_ema
    t_joint, t_marg = joint_and_marginal_scores(spec, theta, x, y)
    if bound == "mine":
        log_ema = bounds.update_log_ema(log_ema, t_marg, 0.01, True)
        return bounds.mine_surrogate(t_joint, t_marg, log_ema), log_ema
    if bound == "nwj":
        return bounds.nwj_value(t_joint, t_marg), log_ema
    return bounds.js_value(t_joint, t_marg), log_ema


@pytest.mark.parametrize("kind", ["concat", "separable"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "elu"])
@pytest.mark.parametrize("dims", [(1, 1), (3, 6)])
def test_written_out_backprop_equals_autograd(kind, activation, dims):
    """The hand-written backward pass of every critic, bound and activation equals autograd;
    a reused workspace (also with fewer pairs, as after pairs stop) changes nothing."""
    spec = CriticSpec(kind, dims[0], dims[1], hidden=(16, 8), embed_dim=5, activation=activation)
    gen = torch.Generator().manual_seed(3)
    theta = torch.stack([init_flat(spec, seed) for seed in range(4)])
    x = torch.randn(4, 12, dims[0], generator=gen, dtype=torch.float64)
    y = torch.randn(4, 12, dims[1], generator=gen, dtype=torch.float64)
    ema = torch.zeros(4, dtype=torch.float64)
    workspace = Workspace()
    for bound in BOUNDS:
        leaf = theta.clone().requires_grad_(True)
        ref_obj, ref_ema = _autograd_objective(spec, bound, leaf, x, y, ema)
        (ref_grad,) = torch.autograd.grad(ref_obj.sum(), leaf)
        for ws in (None, workspace):
            obj, grad, new_ema = objective_and_grad(spec, bound, theta, x, y, ema, True, 0.01, ws)
            torch.testing.assert_close(obj, ref_obj.detach(), rtol=0, atol=1e-12)
            torch.testing.assert_close(grad, ref_grad, rtol=0, atol=1e-12)
            torch.testing.assert_close(new_ema, ref_ema.detach(), rtol=0, atol=1e-12)
        _, grad, _ = objective_and_grad(spec, bound, theta[1:3], x[1:3], y[1:3], ema[1:3], True,
                                        0.01, workspace)
        torch.testing.assert_close(grad, ref_grad[1:3], rtol=0, atol=1e-12)


def test_grouped_adam_matches_torch_adam_per_row_and_skips_frozen_rows():
    cfg = TrainConfig(bound="mine", learning_rate=0.01)
    gen = torch.Generator().manual_seed(3)
    theta = torch.randn(3, 7, generator=gen, dtype=torch.float64)
    ref = theta.clone().requires_grad_(True)
    opt = torch.optim.Adam([ref], lr=0.01, maximize=True)
    m, v = torch.zeros_like(theta), torch.zeros_like(theta)
    alive = torch.tensor([True, True, False])
    start = theta.clone()
    for step in (1, 2, 3):
        grad = torch.randn(3, 7, generator=gen, dtype=torch.float64)
        _adam_step(cfg, theta, grad, m, v, alive, step)
        ref.grad = grad.clone()
        opt.step()
    torch.testing.assert_close(theta[:2], ref.detach()[:2])
    torch.testing.assert_close(theta[2], start[2])


def test_pairwise_default_is_all_pairs_and_diagnostics_are_columns():
    rng = np.random.default_rng(14)
    X, Y = rng.normal(size=(400, 3)), rng.normal(size=(400, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing diverges here
        df = distmi.pairwise_mi(X, Y, method="mine", **FAST)
    assert list(zip(df.x_index, df.y_index, strict=True)) == [
        (i, j) for i in range(3) for j in range(2)
    ]
    assert {"steps", "stop_reason", "diverged", "n_train", "n_test"} <= set(df.columns)
    assert (df.n_train + df.n_test == 400).all()
