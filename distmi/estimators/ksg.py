"""KSG mutual information (``method="ksg"``) and Kozachenko-Leonenko entropy.

- Continuous X and Y of any dimension: Kraskov-Stoegbauer-Grassberger algorithm 1 or 2
  (see :mod:`distmi.kernels.ksg_mi`).
- Continuous X and class labels Y: Ross (2014)'s nearest-neighbour estimator.
- Many 1-D pairs or 1-D slices: the compiled exact column search
  (:mod:`distmi.kernels.knn_compiled`, numba), or the vectorised numpy grid search
  (:mod:`distmi.kernels.knn_grid`, ``backend="grid"``) where numba is missing; other shapes: a k-d tree per problem, or batched brute force (``backend="brute"``, also on
  CUDA).

Error bars come from half-sampling (:mod:`distmi.estimators.ksg_config`). KSG is nearly
unbiased for weak dependence and biased low for strong dependence in high dimension (Kraskov
et al. 2004, sec. IV; Gao et al. 2015): the interval covers sampling noise, not that bias.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from distmi.core.errors import InvalidInputError, InvalidParameterError
from distmi.core.results import MIResult
from distmi.core.seeds import resolve_seed
from distmi.core.validation import as_float_matrix, check_int
from distmi.estimators.base import MIEstimator
from distmi.estimators.ksg_config import (
    KSGConfig,
    check_class_sizes,
    check_neighbours,
    half_sample,
    half_sample_error,
    pair_rows,
    parse_ksg_config,
    prepare_rows,
    validate_ksg_params,
)
from distmi.estimators.registry import MethodSpec

_ROWS_BUDGET = 1 << 17  # points per batched 1-D call (keeps kernel arrays cache-sized)


def solve_1d(px: np.ndarray, py: np.ndarray, config: KSGConfig, discrete_y: bool) -> np.ndarray:
    """KSG (or Ross, for labels) of B 1-D problems; px (B, n), py (B, n) values or labels.

    Rows are solved in blocks of about 2^17 points; with ``config.n_jobs > 1`` blocks run on
    that many threads (numpy releases the GIL inside its kernels). Each row's value does not
    depend on the blocking.
    """
    from distmi.kernels.knn_compiled import HAVE_NUMBA
    from distmi.kernels.ksg_mi import (
        ksg_1d_batch,
        ksg_1d_compiled,
        ksg_batch,
        mixed_1d_batch,
        mixed_batch,
    )

    config = config.resolved()
    b, n = px.shape
    backend = config.backend
    if backend == "auto":
        if config.device != "cpu":
            backend = "brute"
        else:
            backend = "compiled" if HAVE_NUMBA else "grid"
    if backend == "compiled" and not HAVE_NUMBA:
        raise InvalidParameterError(
            "backend='compiled' needs numba, which is not installed; install it "
            "(pip install numba) or use backend='grid'."
        )

    def block(sl: slice) -> np.ndarray:
        if discrete_y:
            if backend in ("grid", "compiled"):  # Ross 1-D: a vectorised O(k n) scan
                return mixed_1d_batch(px[sl], py[sl], config.k)
            return mixed_batch(px[sl, :, None], py[sl], config.k, backend, config.device,
                               config.workers, config.memory_budget)
        if backend == "compiled":
            return ksg_1d_compiled(px[sl], py[sl], config.k, config.algorithm)
        if backend == "grid":
            return ksg_1d_batch(px[sl], py[sl], config.k, config.algorithm)[0]
        return ksg_batch(px[sl, :, None], py[sl, :, None], config.k, config.algorithm, backend,
                         config.device, config.workers, config.memory_budget)

    step = max(1, _ROWS_BUDGET // n)
    blocks = [slice(start, min(start + step, b)) for start in range(0, b, step)]
    if config.n_jobs > 1 and len(blocks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=config.n_jobs) as pool:
            parts = list(pool.map(block, blocks))
    else:
        parts = [block(sl) for sl in blocks]
    return np.concatenate(parts) if parts else np.empty(0)


def solve_nd(x: np.ndarray, y: np.ndarray, config: KSGConfig, discrete_y: bool) -> np.ndarray:
    """KSG (or Ross) of G problems of any dimension; x (G, n, dx), y (G, n, dy) or (G, n)."""
    from distmi.kernels.ksg_mi import ksg_batch, mixed_batch

    config = config.resolved()
    if config.backend in ("grid", "compiled"):
        raise InvalidParameterError(
            f"backend='{config.backend}' handles 1-D x and 1-D y (or labels) only, got x with "
            f"{x.shape[2]} columns; use backend='auto', 'kdtree' or 'brute'."
        )
    backend = config.backend
    if backend == "auto":
        backend = "kdtree" if config.device == "cpu" else "brute"
    if discrete_y:
        return mixed_batch(x, y, config.k, backend, config.device, config.workers,
                           config.memory_budget)
    return ksg_batch(x, y, config.k, config.algorithm, backend, config.device, config.workers,
                     config.memory_budget)


def _result(value: float, reps: np.ndarray, n: int, config: KSGConfig, discrete_y: bool,
            dims: tuple[int, int], n_bootstrap: int, seed: int) -> MIResult:
    std, ci = half_sample_error(value, reps, n, config.ci_level)
    params = {**config.model_dump(), "n_bootstrap": n_bootstrap, "random_state": seed}
    diagnostics = {
        "dx": dims[0],
        "dy": dims[1],
        "discrete_y": discrete_y,
        "estimator": "ross2014" if discrete_y else f"ksg{config.algorithm}",
        "error_method": "half-sampling (delete-d jackknife)" if n_bootstrap else "none",
        "replicates": reps,
    }
    return MIResult(float(value), std, ci, n, "ksg", params, diagnostics)


def estimate(
    x: np.ndarray,
    y: np.ndarray,
    *,
    discrete_y: bool,
    n_bootstrap: int,
    random_state: int,
    **params: Any,
) -> MIResult:
    """``distmi.mutual_information(x, y, method="ksg", k=3, algorithm=1, ...)``."""
    config = parse_ksg_config(**params)
    n, dx = x.shape
    check_neighbours(n, config.k, n_bootstrap)
    xr = prepare_rows(x.T, random_state, "x", config.jitter)  # (dx, n)
    if discrete_y:
        check_class_sizes(y)
        yr, dy = y, 1
    else:
        yr = prepare_rows(y.T, random_state, "y", config.jitter)
        dy = y.shape[1]
    subsets = [half_sample(random_state, b, n) for b in range(n_bootstrap)]
    if dx == 1 and (discrete_y or dy == 1):
        py = yr[None, :] if discrete_y else yr
        value = solve_1d(xr, py, config, discrete_y)[0]
        reps = np.array([solve_1d(xr[:, s], py[:, s], config, discrete_y)[0] for s in subsets])
    else:
        yt = yr[None, :] if discrete_y else yr.T[None]
        value = solve_nd(xr.T[None], yt, config, discrete_y)[0]
        if subsets:
            xs = np.stack([xr.T[s] for s in subsets])
            ys = np.stack([yr[s] if discrete_y else yr.T[s] for s in subsets])
            reps = solve_nd(xs, ys, config, discrete_y)
        else:
            reps = np.empty(0)
    return _result(value, reps, n, config, discrete_y, (dx, dy), n_bootstrap, random_state)


def estimate_pairs(
    X: np.ndarray,
    Y: np.ndarray,
    pairs: np.ndarray,
    *,
    discrete_y: bool,
    n_bootstrap: int,
    random_state: int,
    **params: Any,
) -> list[MIResult]:
    """All (X[:, i], Y[:, j]) pairs (or X[:, i] vs labels) as batched 1-D problems.

    Pair p equals ``estimate(X[:, [i]], Y[:, [j]])``: columns are standardised and jittered
    exactly as alone, and every pair shares the same half-samples.
    """
    config = parse_ksg_config(**params)
    n = X.shape[0]
    check_neighbours(n, config.k, n_bootstrap)
    px, py = pair_rows(X, Y, pairs, discrete_y, random_state, config.jitter)  # (P, n)
    if discrete_y:
        py = np.broadcast_to(Y, px.shape)
    values = solve_1d(px, py, config, discrete_y)
    reps = np.empty((len(pairs), n_bootstrap))
    for b in range(n_bootstrap):
        s = half_sample(random_state, b, n)
        reps[:, b] = solve_1d(px[:, s], py[:, s], config, discrete_y)
    return [
        _result(values[p], reps[p], n, config, discrete_y, (1, 1), n_bootstrap, random_state)
        for p in range(len(pairs))
    ]


KSG_METHOD = MethodSpec(
    name="ksg",
    estimate=estimate,
    estimate_pairs=estimate_pairs,
    supports_discrete_y=True,
    supports_multivariate=True,
    description="KSG k-nearest-neighbour MI (Kraskov 1/2; Ross 2014 for labels), half-sample CIs",
    validate_params=validate_ksg_params,
    estimator_class="distmi.estimators.ksg:KSG",
)


class KSG(MIEstimator):
    """Scikit-learn-style KSG estimator (the contract of :class:`MIEstimator`).

    The constructor only stores parameters (:class:`KSGConfig` documents them);
    :meth:`fit` validates the data, estimates and sets ``result_``, ``mi_`` (nats),
    ``mi_std_``, ``ci_`` and ``status_``.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=2000); y = 0.6 * x + 0.8 * rng.normal(size=2000)
        >>> est = KSG(k=3, n_bootstrap=20).fit(x, y)
        >>> abs(est.mi_ - 0.2231) < 4 * est.mi_std_ + 0.02
        True
    """

    method = "ksg"

    def __init__(self, k: int = 3, algorithm: int = 1, discrete_y: bool = False,
                 n_bootstrap: int = 50, random_state: int | None = 0, jitter: float = 1e-10,
                 backend: str = "auto", device: str = "cpu", ci_level: float = 0.95,
                 workers: int = 1, n_jobs: int = 1, memory_budget: float = 256e6) -> None:
        self.k = k
        self.algorithm = algorithm
        self.discrete_y = discrete_y
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state
        self.jitter = jitter
        self.backend = backend
        self.device = device
        self.ci_level = ci_level
        self.workers = workers
        self.n_jobs = n_jobs
        self.memory_budget = memory_budget


def kl_entropy(x: Any, k: int = 3, metric: str = "chebyshev", jitter: float = 1e-10,
               random_state: int | None = 0, backend: str = "kdtree") -> float:
    """Kozachenko-Leonenko entropy of the samples x (n,) or (n, d), in nats.

    The data are not standardised (entropy is not scale invariant). ``jitter`` adds that many
    standard deviations of noise per column to break ties between duplicated samples.
    """
    from distmi.core.scaling import prescale
    from distmi.core.seeds import derive_rng
    from distmi.core.validation import check_choice
    from distmi.kernels.entropy import kl_entropy as _kl

    arr = as_float_matrix(x, "x")
    k = check_int(k, "k", minimum=1)
    check_choice(metric, "metric", ("chebyshev", "euclidean"))
    check_choice(backend, "backend", ("kdtree", "brute"))
    check_neighbours(len(arr), k, 0, "Kozachenko-Leonenko entropy")
    seed = resolve_seed(random_state)
    # h(X) = h(X / s) + d log s for one power-of-two scale s (exact): no overflow at any scale
    arr, scale = prescale(arr)
    if jitter:
        sd = np.sqrt(np.mean(np.square(arr - arr.mean(axis=0)), axis=0))  # |arr| <= 1
        noise = derive_rng(seed, "ksg-jitter", "x").standard_normal(len(arr))
        arr = arr + jitter * sd * noise[:, None]
    value = float(_kl(arr[None], k, metric, backend)[0]) + arr.shape[1] * math.log(scale)
    if not np.isfinite(value):
        raise InvalidInputError(
            f"Kozachenko-Leonenko entropy is {value}: some points have {k} or more exact "
            "duplicates (zero neighbour distance); pass jitter > 0 or drop duplicated rows."
        )
    return value
