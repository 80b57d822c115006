"""How the conformance suite runs a method: fast parameters, data sizes and stated tolerances.

Every statistical check averages over many datasets solved in **one batched call**
(``distmi.pairwise_mi`` over independent column pairs), so its tolerance can sit well below
the effect it tests:

- accuracy: for each MI level, the mean error over ``n_datasets_per_level`` bivariate-Gaussian
  datasets must be within ``accuracy_tol`` nats of the closed form -1/2 log(1 - rho^2). The
  levels (0.1 and 0.5 nats) are 5x and 25x the default tolerance, so an estimator that
  returns 0, or a constant, fails;
- error bars: the mean reported ``std`` must be within a factor ``std_ratio`` of the spread
  of the estimates across datasets;
- coverage (methods whose interval covers the MI, ``MethodSpec.ci_covers == "mi"``): the
  share of the ``2 * n_datasets_per_level`` 95% intervals that contain the truth must lie in
  ``coverage_range``. For a correct interval and 100 datasets the count is Binomial(100,
  0.95): below 85 with probability < 1e-4 and above 99 with probability 0.006. Variational
  bounds (``ci_covers == "bound"``) report an interval for the bound of the trained critic,
  which lies below the MI; for them the lower ends must cover (at least
  ``coverage_range[0]`` of them at or below the truth).

The built-in settings below state each method's tolerance and where it comes from (measured
bias and spread at these sizes, ``docs/estimators.md``). A plug-in passes its own
:class:`CheckSettings` to :func:`distmi.testing.check_method`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrustCase:
    """A planted situation in which a method must flag its result.

    Attributes:
        status: the expected ``MIResult.status``.
        data: ``"huge"`` (x is 1e30 times a Gaussian, correlated with y), ``"independent"``
            (x and y independent Gaussians) or ``"high_mi"`` (rho = 0.9999, 4.6 nats).
        params: method parameters that provoke it (merged over the case's params).
        n_samples: rows of the planted data.
    """

    status: str
    data: str
    params: dict[str, Any] = field(default_factory=dict)
    n_samples: int = 600


@dataclass(frozen=True)
class CheckSettings:
    """Settings of the conformance checks for one method (see the module docstring).

    Attributes:
        params: method parameters used by every check (fast settings).
        accuracy_params: parameters merged over ``params`` for the statistical checks.
        n_samples: rows of the small datasets of the functional checks.
        accuracy_n: rows of each dataset of the statistical checks.
        n_datasets_per_level: datasets per MI level (>= 30; coverage pools both levels).
        mi_levels: true MI of the Gaussian datasets, nats.
        accuracy_tol: allowed |mean error| per level, nats.
        accuracy_range: allowed (lowest, highest) mean error per level instead of
            +-``accuracy_tol`` (for estimators with a known sign of bias, e.g. lower bounds).
        n_bootstrap: replicates for the intervals of the statistical checks.
        std_ratio: allowed factor between the mean reported std and the spread of estimates.
        coverage_range: allowed share of 95% intervals containing the truth.
        pairs_rtol: relative tolerance of "a pair in a batch equals the pair alone".
        scale_rtol: relative tolerance of "scaled data give the unit-scale answer".
        seed_sensitive: whether a different seed must change the result (a method with no
            randomness at n_bootstrap > 0 would have no use for the seed).
        has_device: whether the method takes ``device=``.
        device_params: parameters merged in when CUDA results are compared with the CPU.
        device_atol: allowed |CUDA - CPU| difference of the estimate, nats.
        trust_cases: planted situations the method must flag.
        statistical: run the accuracy, error-bar and coverage checks.
        slow_statistics: mark the statistical checks ``slow`` in
            :func:`~distmi.testing.parametrize_with_checks` (``make test-slow`` runs them).
    """

    params: dict[str, Any] = field(default_factory=dict)
    accuracy_params: dict[str, Any] = field(default_factory=dict)
    n_samples: int = 400
    accuracy_n: int = 1000
    n_datasets_per_level: int = 50
    mi_levels: tuple[float, ...] = (0.1, 0.5)
    accuracy_tol: float = 0.02
    accuracy_range: tuple[float, float] | None = None
    n_bootstrap: int = 50
    std_ratio: float = 2.0
    coverage_range: tuple[float, float] = (0.85, 0.99)
    pairs_rtol: float = 1e-9
    scale_rtol: float = 1e-9
    seed_sensitive: bool = True
    has_device: bool = False
    device_params: dict[str, Any] = field(default_factory=dict)
    device_atol: float = 1e-6
    trust_cases: tuple[TrustCase, ...] = ()
    statistical: bool = True
    slow_statistics: bool = False

    def __post_init__(self) -> None:
        if self.n_datasets_per_level < 30:
            raise ValueError(
                f"n_datasets_per_level must be >= 30 (a mean over fewer datasets cannot carry "
                f"a tolerance well below the effect), got {self.n_datasets_per_level}"
            )
        if len(self.mi_levels) * self.n_datasets_per_level < 40:
            raise ValueError("coverage needs >= 40 datasets")

    @property
    def error_range(self) -> tuple[float, float]:
        """Allowed (lowest, highest) mean error of the accuracy check, nats."""
        if self.accuracy_range is not None:
            return self.accuracy_range
        return (-self.accuracy_tol, self.accuracy_tol)


_NEURAL_FAST = dict(hidden=(8, 8), batch_size=32, max_steps=150, eval_every=25, patience=2)
_NEURAL_DEFAULTS = dict(hidden=None, batch_size=128, max_steps=2000, eval_every=50,
                        patience=10)

BUILTIN_SETTINGS: dict[str, CheckSettings] = {
    # GMM-MI with its defaults (K chosen by 2-fold CV, 3 k-means++ inits) but at most 3
    # components: Gaussian data select K = 1. Measured at n = 500 (100 datasets): bias
    # +0.004, sd 0.035 per dataset, coverage 0.93.
    "gmm": CheckSettings(params=dict(max_components=3), accuracy_n=500, has_device=True),
    # KSG-1, k = 3, n = 1000: bias +0.006 (0.5 nats), sd 0.031; half-sample intervals are
    # conservative (mean std 0.037, coverage 0.98).
    "ksg": CheckSettings(has_device=True),
    # 1-D sliced MI equals MI (every slice is +-x, +-y); 16 slices, KSG base.
    "sliced": CheckSettings(params=dict(n_slices=16, n_permutations=0), n_bootstrap=30,
                            has_device=True),
    # WKL on 1-D pairs: k = 5 and unit weights (the plain 3-term Kozachenko-Leonenko sum,
    # whose neighbour scales are not shared between the terms as KSG's are), n = 1000:
    # measured mean error +0.023 at 0.5 nats, +0.00 at 0.1 nats, sd 0.036 per dataset (50
    # datasets); allowed -0.02 to +0.04.
    "wkl": CheckSettings(accuracy_range=(-0.02, 0.04), has_device=True),
}
# Neural bounds: functional checks with small, short-trained critics; statistical checks
# with the defaults at n = 2000 (1000 training rows), 30 datasets per level. Lower bounds are
# biased low: measured mean error at 0.5 nats -0.015 (MINE) and -0.019 (InfoNCE) over 32
# datasets, sd 0.03 per dataset; allowed -0.04 to +0.02. Their intervals cover the bound of
# the trained critic (ci_covers="bound"); two-sided coverage of the MI was 0.74-0.92.
_HUGE = TrustCase("negative", "huge", dict(standardize=False))  # 1e30 x, not standardised
_TRUST = {
    "mine": (_HUGE,),
    "nwj": (_HUGE,
            TrustCase("diverged", "high_mi", dict(learning_rate=1e4)),
            TrustCase("negative", "independent", dict(max_steps=1, eval_every=1))),
    "infonce": (_HUGE,
                TrustCase("capped", "high_mi", dict(batch_size=8, critic="concat",
                                                    max_steps=300, learning_rate=0.01))),
    "smile": (_HUGE,),
}
for _bound, _cases in _TRUST.items():
    BUILTIN_SETTINGS[_bound] = CheckSettings(
        params=dict(_NEURAL_FAST),
        accuracy_params=dict(_NEURAL_DEFAULTS),
        accuracy_n=2000,
        n_datasets_per_level=30,
        accuracy_range=(-0.04, 0.02),
        pairs_rtol=1e-4,
        scale_rtol=1e-5,
        has_device=True,
        device_params=dict(dtype="float64"),  # float32 reductions differ between devices
        trust_cases=_cases,
        slow_statistics=True,
    )


def settings_for(name: str) -> CheckSettings:
    """The built-in settings of ``name``, or the defaults for a plug-in."""
    return BUILTIN_SETTINGS.get(name, CheckSettings())
