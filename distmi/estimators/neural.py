"""Neural MI bounds (MINE, NWJ, InfoNCE, SMILE) with grouped training of many pairs.

Registered as methods ``"mine"``, ``"nwj"``, ``"infonce"`` and ``"smile"`` of
:func:`distmi.mutual_information` and :func:`distmi.pairwise_mi`; also usable as the
sklearn-style :class:`NeuralMI`. The maths of the bounds is in :mod:`distmi.kernels.bounds`,
the grouped networks in :mod:`distmi.kernels.critics`, the training loop in
:mod:`distmi.kernels.grouped_training`. User documentation: ``docs/neural.md``.

Recipe for one call (every pair of a ``pairwise_mi`` call follows it with the same seed):
1. standardise every continuous column (z-score; MI is invariant to it), one-hot encode labels;
2. split the rows once: a held-out fraction (default half) for the estimate, the rest to train;
3. train the critics (shared initial critic, shared batch rows, per-pair Adam and stopping);
4. report the bound on the held-out rows, with a bootstrap over held-out rows for std and CI;
5. say when the value is not to be trusted (:func:`trust_status`): ``diagnostics["status"]``
   is ``"diverged"``, ``"negative"`` or ``"capped"`` instead of ``"ok"``.
The seeds come from ``derive_seed(random_state, "neural", <purpose>)``, never from a pair's
position, so ``pairwise_mi`` row (i, j) equals ``mutual_information(X[:, i], Y[:, j])``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from distmi.core.devices import check_device, resolve_device
from distmi.core.errors import InvalidParameterError, TooFewSamplesError
from distmi.core.results import MIResult
from distmi.core.scaling import standardize
from distmi.core.seeds import derive_rng, derive_seed
from distmi.core.validation import check_choice, check_float, check_int
from distmi.estimators.base import MIEstimator
from distmi.estimators.registry import MethodSpec

BOUNDS = ("mine", "nwj", "infonce", "smile")
# Elements of the largest training activation of one group. On a GPU, bigger groups fill the
# device; on a CPU a group whose activations stay near the cache size trains a little faster
# (docs/neural.md: 600 scalar pairs, 22.2 s as groups of 256 against 23.7 s as one group).
_GROUP_BUDGET = {"cpu": 1 << 21, "cuda": 1 << 25}


@dataclass(frozen=True)
class NeuralSettings:
    """Validated parameters of a neural bound (see ``docs/neural.md`` for each one)."""

    bound: str
    critic: str
    hidden: tuple[int, ...] | None = None
    embed_dim: int = 32
    activation: str = "relu"
    batch_size: int = 128
    max_steps: int = 2000
    learning_rate: float = 1e-3
    holdout_fraction: float = 0.5
    eval_every: int = 50
    patience: int = 10
    smoothing: float = 0.3
    min_delta: float = 1e-3
    standardize: bool = True
    device: str = "cpu"
    dtype: str = "float32"
    group_size: int | None = None
    n_negatives: int = 16
    ema_alpha: float = 0.01
    clip: float = 5.0


# parameters that only some bounds accept
_BOUND_ONLY = {"ema_alpha": ("mine",), "clip": ("smile",), "n_negatives": ("mine", "nwj", "smile")}
_ALLOWED = tuple(f for f in NeuralSettings.__dataclass_fields__ if f != "bound")


def resolve_params(bound: str, params: dict[str, Any]) -> NeuralSettings:
    """Validate user parameters of ``bound``; unknown names raise InvalidParameterError."""
    bound = check_choice(bound, "bound", BOUNDS)
    allowed = [k for k in _ALLOWED if bound in _BOUND_ONLY.get(k, BOUNDS)]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise InvalidParameterError(
            f"unknown parameter(s) {unknown} for method {bound!r}; allowed parameters are "
            f"{sorted(allowed)} (ema_alpha is MINE-only, clip SMILE-only, n_negatives not for "
            "InfoNCE, which contrasts each row with its whole batch)."
        )
    p = dict(params)
    default_critic = "separable" if bound == "infonce" else "concat"
    critic = check_choice(p.pop("critic", None) or default_critic, "critic", ("concat", "separable"))
    s = NeuralSettings(bound=bound, critic=critic)
    hidden = p.pop("hidden", None)
    if hidden is not None:
        hidden = (hidden,) if isinstance(hidden, int | np.integer) else hidden
        if not isinstance(hidden, list | tuple) or not hidden:
            raise InvalidParameterError(
                f"hidden must be a positive int or a non-empty tuple of them, got {hidden!r}; "
                "e.g. hidden=(64, 64), or None for the default."
            )
        s = replace(s, hidden=tuple(check_int(h, "hidden width", minimum=1) for h in hidden))
    ints = {"embed_dim": 1, "batch_size": 2, "max_steps": 1, "eval_every": 1, "patience": 1,
            "n_negatives": 1}
    for name, low in ints.items():
        if name in p:
            s = replace(s, **{name: check_int(p.pop(name), name, minimum=low)})
    # name: (low, high, open ends); an open end excludes the bound itself
    floats = {"learning_rate": (0.0, None, "low"), "holdout_fraction": (0.0, 1.0, "both"),
              "smoothing": (0.0, 1.0, "low"), "min_delta": (0.0, None, ""),
              "ema_alpha": (0.0, 1.0, "both"), "clip": (0.0, None, "low")}
    for name, (low, high, open_ends) in floats.items():
        if name in p:
            value = check_float(p.pop(name), name, minimum=low, maximum=high)
            if (value == low and open_ends in ("low", "both")) or (
                value == high and open_ends == "both"
            ):
                where = (f"strictly between {low} and {high}" if open_ends == "both"
                         else f"> {low}" + (f" and <= {high}" if high is not None else ""))
                default = getattr(NeuralSettings(bound=bound, critic=critic), name)
                raise InvalidParameterError(
                    f"{name} must be {where}, got {value}; the default is {name}={default}."
                )
            s = replace(s, **{name: value})
    if "activation" in p:
        s = replace(s, activation=check_choice(p.pop("activation"), "activation",
                                               ("relu", "elu", "tanh")))
    if "device" in p:
        s = replace(s, device=check_device(p.pop("device")))
    if "dtype" in p:
        s = replace(s, dtype=check_choice(p.pop("dtype"), "dtype", ("float32", "float64")))
    if "standardize" in p:
        value = p.pop("standardize")
        if not isinstance(value, bool | np.bool_):
            raise InvalidParameterError(f"standardize must be True or False, got {value!r}.")
        s = replace(s, standardize=bool(value))
    if "group_size" in p:
        value = p.pop("group_size")
        s = replace(s, group_size=None if value is None else check_int(value, "group_size",
                                                                        minimum=1))
    return s


NEGATIVE_MARGIN = 0.05
"""nats: a held-out bound below -max(NEGATIVE_MARGIN, 3 std) is flagged ``"negative"``."""
CAP_GAP = 0.1
"""nats: InfoNCE is flagged ``"capped"`` where its log(B) ceiling costs at least this much."""


def infonce_cap_threshold(batch_size: int, gap: float = CAP_GAP) -> float:
    """The InfoNCE value above which the ceiling log(B) costs at least ``gap`` nats.

    With the optimal critic each row contrasts its density ratio r = p(y|x)/p(y) with B - 1
    negatives whose ratios average 1, so InfoNCE ~ log B - log(1 + (B - 1) e^{-I}) (van den
    Oord et al. 2018; Poole et al. 2019, Sec. 2.3). Solving for the value v at which
    I - v = gap gives v* = log(B - (B - 1) e^{-gap}): 0.51 nats for B = 8, 2.57 for B = 128.
    """
    b = float(batch_size)
    return math.log(b - (b - 1.0) * math.exp(-gap))


def trust_status(bound: str, value: float, std: float, diverged: bool, batch_size: int) -> str:
    """``"ok"`` or why a neural estimate is not to be trusted (``MIResult.status``).

    - ``"diverged"``: training produced a non-finite loss (the value is NaN);
    - ``"negative"``: the held-out bound is below -max(0.05 nats, 3 std): MI is >= 0, so the
      critic does not generalise to held-out rows (over-fitted or failed training);
    - ``"capped"``: InfoNCE at or above :func:`infonce_cap_threshold`: the log(batch_size)
      ceiling costs >= 0.1 nats, and the MI may be far larger (raise batch_size).
    """
    if diverged or not math.isfinite(value):
        return "diverged"
    margin = max(NEGATIVE_MARGIN, 3.0 * std) if math.isfinite(std) else NEGATIVE_MARGIN
    if value < -margin:
        return "negative"
    if bound == "infonce" and value >= infonce_cap_threshold(batch_size):
        return "capped"
    return "ok"


def _split_rows(n: int, s: NeuralSettings, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_rows, test_rows) from one seeded permutation; checks the sizes."""
    n_test = round(n * s.holdout_fraction)
    n_train = n - n_test
    need_test = s.batch_size if s.bound == "infonce" else 2
    if n_train < s.batch_size or n_test < need_test:
        need = max(int(np.ceil(s.batch_size / (1.0 - s.holdout_fraction))),
                   int(np.ceil(need_test / s.holdout_fraction)))
        raise TooFewSamplesError(
            f"method {s.bound!r} with batch_size={s.batch_size} and holdout_fraction="
            f"{s.holdout_fraction} needs at least {need} samples ({n_train} train / {n_test} "
            f"held-out rows from n={n}); lower batch_size (e.g. batch_size={max(2, n_train // 2)})"
            " or pass more samples."
        )
    perm = derive_rng(seed, "neural", "split").permutation(n)
    return np.sort(perm[n_test:]), perm[:n_test]


def _as_variables(cols: np.ndarray, standardize_cols: bool) -> np.ndarray:
    """(S, d, n) columns -> (S, n, d) float64 variables, z-scored per column if asked.

    The z-scores come from :func:`distmi.core.scaling.standardize` (any data scale)."""
    cols = np.ascontiguousarray(cols, dtype=np.float64)
    if standardize_cols:
        cols = standardize(cols, axis=2)
    return np.ascontiguousarray(cols.transpose(0, 2, 1))


def _one_hot(codes: np.ndarray) -> np.ndarray:
    """(n,) label codes -> (1, n, C) one-hot variable."""
    return np.eye(int(codes.max()) + 1)[codes][None]


def _run(
    s: NeuralSettings,
    x_vars: np.ndarray,
    y_vars: np.ndarray,
    x_index: np.ndarray,
    y_index: np.ndarray,
    n_bootstrap: int,
    seed: int,
) -> list[MIResult]:
    """Estimate MI for pairs (x_vars[x_index[p]], y_vars[y_index[p]]) in groups."""
    import torch

    from distmi.kernels.critics import CriticSpec, init_flat
    from distmi.kernels.grouped_training import GroupData, TrainConfig, train_grouped

    n, dx, dy = x_vars.shape[1], x_vars.shape[2], y_vars.shape[2]
    if s.hidden is None:  # small problems (scalar pairs) need small critics
        s = replace(s, hidden=(32, 32) if dx + dy <= 4 else (128, 128))
    train_rows, test_rows = _split_rows(n, s, seed)
    device = resolve_device(s.device)
    dtype = torch.float64 if s.dtype == "float64" else torch.float32
    spec = CriticSpec(s.critic, dx, dy, s.hidden, s.embed_dim, s.activation)
    cfg = TrainConfig(s.bound, s.batch_size, s.max_steps, s.learning_rate, s.eval_every,
                      s.patience, s.smoothing, s.min_delta, s.ema_alpha, s.clip,
                      min(s.n_negatives, test_rows.size - 1))
    rows = s.batch_size * (s.batch_size if s.bound == "infonce" and s.critic == "concat" else 2)
    per_pair = rows * max(*s.hidden, s.embed_dim)  # largest activation of one pair
    if s.bound == "infonce":  # and its B x B score matrix
        per_pair = max(per_pair, s.batch_size * s.batch_size)
    budget = _GROUP_BUDGET["cuda" if device.startswith("cuda") else "cpu"]
    group = s.group_size or max(1, budget // per_pair)
    xv = torch.as_tensor(x_vars, dtype=dtype, device=device)
    yv = torch.as_tensor(y_vars, dtype=dtype, device=device)
    init = init_flat(spec, derive_seed(seed, "neural", "critic_init"))
    results: list[MIResult] = []
    n_diverged = 0
    for g0 in range(0, len(x_index), group):
        data = GroupData(xv, yv, torch.as_tensor(x_index[g0 : g0 + group]),
                         torch.as_tensor(y_index[g0 : g0 + group]), train_rows, test_rows)
        fit = train_grouped(spec, cfg, data, init,
                            batch_seed=derive_seed(seed, "neural", "batches"),
                            bootstrap_seed=derive_seed(seed, "neural", "bootstrap"),
                            n_bootstrap=n_bootstrap)
        for p in range(len(fit.value)):
            diverged = fit.stop_reason[p] == "diverged"
            n_diverged += diverged
            status = trust_status(s.bound, float(fit.value[p]), float(fit.std[p]), diverged,
                                  s.batch_size)
            results.append(MIResult(
                value=float(fit.value[p]), std=float(fit.std[p]),
                ci=(float(fit.ci_low[p]), float(fit.ci_high[p])), n_samples=int(n),
                method=s.bound,
                params={**asdict(s), "random_state": seed, "n_bootstrap": n_bootstrap},
                diagnostics={
                    "steps": int(fit.steps[p]), "stop_reason": fit.stop_reason[p],
                    "diverged": diverged, "diverged_at_step": int(fit.diverged_at_step[p]),
                    "smoothed_estimate": float(fit.smoothed[p]), "critic": s.critic,
                    "n_train": int(train_rows.size), "n_test": fit.n_test_used,
                    "device": device, "status": status,
                },
            ))
    if n_diverged:
        warnings.warn(
            f"{n_diverged} of {len(results)} {s.bound} critic(s) diverged (non-finite loss) and "
            "were frozen at their last finite parameters; see diagnostics['diverged']. Try a "
            "lower learning_rate, or method='smile' / 'infonce', which are more stable.",
            RuntimeWarning, stacklevel=3,
        )
    return results


def estimate(
    x: np.ndarray, y: np.ndarray, *, discrete_y: bool, n_bootstrap: int, random_state: int,
    bound: str = "mine", **params: Any,
) -> MIResult:
    """One estimate of I(X; Y): x (n, dx) float64, y (n, dy) or label codes (n,)."""
    s = resolve_params(bound, params)
    x_vars = _as_variables(x.T[None], s.standardize)
    y_vars = _one_hot(y) if discrete_y else _as_variables(y.T[None], s.standardize)
    zero = np.zeros(1, dtype=np.int64)
    return _run(s, x_vars, y_vars, zero, zero, n_bootstrap, random_state)[0]


def estimate_pairs(
    X: np.ndarray, Y: np.ndarray, pairs: np.ndarray, *, discrete_y: bool, n_bootstrap: int,
    random_state: int, bound: str = "mine", **params: Any,
) -> list[MIResult]:
    """I(X_i; Y_j) for each (i, j) row of ``pairs`` (P, 2), all trained as grouped networks."""
    s = resolve_params(bound, params)
    ux, x_index = np.unique(pairs[:, 0], return_inverse=True)
    x_vars = _as_variables(X[:, ux].T[:, None, :], s.standardize)  # (Sx, n, 1)
    if discrete_y:
        y_vars, y_index = _one_hot(Y), np.zeros(len(pairs), dtype=np.int64)
    else:
        uy, y_index = np.unique(pairs[:, 1], return_inverse=True)
        y_vars = _as_variables(Y[:, uy].T[:, None, :], s.standardize)
    return _run(s, x_vars, y_vars, x_index.astype(np.int64), y_index.astype(np.int64),
                n_bootstrap, random_state)


def _method(name: str, description: str) -> MethodSpec:
    return MethodSpec(
        name=name, estimate=partial(estimate, bound=name),
        estimate_pairs=partial(estimate_pairs, bound=name),
        supports_discrete_y=True, supports_multivariate=True, description=description,
        validate_params=partial(resolve_params, name),
        estimator_class="distmi.estimators.neural:NeuralMI",
        ci_covers="bound", statuses=("diverged", "negative", "capped"),
    )


MINE_METHOD = _method("mine", "MINE: Donsker-Varadhan bound, moving-average gradient (torch)")
NWJ_METHOD = _method("nwj", "NWJ f-divergence lower bound with a neural critic (torch)")
INFONCE_METHOD = _method("infonce", "InfoNCE contrastive bound, capped at log(batch_size)")
SMILE_METHOD = _method("smile", "SMILE: clipped DV bound read off a JS-trained critic")


class NeuralMI(MIEstimator):
    """sklearn-style neural MI estimator (the contract of :class:`MIEstimator`).

    The constructor only stores arguments (``bound`` picks the method; the other keywords are
    the bound's parameters, see ``docs/neural.md``); :meth:`fit` validates, trains and sets
    ``mi_`` (nats), ``mi_std_``, ``ci_``, ``status_`` and ``result_`` (the :class:`MIResult`).

    Example:
        >>> est = NeuralMI(bound="smile", max_steps=500).fit(x, y)   # doctest: +SKIP
        >>> est.mi_, est.ci_, est.status_                           # doctest: +SKIP
    """

    extra_params_attr = "params"
    class_params = ("bound",)

    def __init__(
        self, bound: str = "mine", *, discrete_y: bool = False, n_bootstrap: int = 100,
        random_state: int | None = 0, **params: Any,
    ) -> None:
        self.bound = bound
        self.discrete_y = discrete_y
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state
        self.params = dict(params)

    def _method_name(self) -> str:
        return check_choice(self.bound, "bound", BOUNDS)

    @classmethod
    def for_method(cls, name: str, **params: Any) -> NeuralMI:
        return cls(bound=name, **params)

    def _extra_param_names(self) -> tuple[str, ...]:
        return _ALLOWED
