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
        n_bootstrap: replicates for the intervals of the statistical checks.
        std_ratio: allowed factor between the mean reported std and the spread of estimates.
        coverage_range: allowed share of 95% intervals containing the truth.
        pairs_rtol: relative tolerance of "a pair in a batch equals the pair alone".
        scale_rtol: relative tolerance of "scaled data give the unit-scale answer".
        seed_sensitive: whether a different seed must change the result (a method with no
            randomness at n_bootstrap > 0 would have no use for the seed).
        has_device: whether the method takes ``device=``.
        trust_cases: planted situations the method must flag.
        statistical: run the accuracy, error-bar and coverage checks.
    """

    params: dict[str, Any] = field(default_factory=dict)
    accuracy_params: dict[str, Any] = field(default_factory=dict)
    n_samples: int = 400
    accuracy_n: int = 1000
    n_datasets_per_level: int = 50
    mi_levels: tuple[float, ...] = (0.1, 0.5)
    accuracy_tol: float = 0.02
    n_bootstrap: int = 50
    std_ratio: float = 2.0
    coverage_range: tuple[float, float] = (0.85, 0.99)
    pairs_rtol: float = 1e-9
    scale_rtol: float = 1e-9
    seed_sensitive: bool = True
    has_device: bool = False
    trust_cases: tuple[TrustCase, ...] = ()
    statistical: bool = True

    def __post_init__(self) -> None:
        if self.n_datasets_per_level < 30:
            raise ValueError(
                f"n_datasets_per_level must be >= 30 (a mean over fewer datasets cannot carry "
                f"a tolerance well below the effect), got {self.n_datasets_per_level}"
            )
        if 2 * self.n_datasets_per_level < 40:
            raise ValueError("coverage needs >= 40 datasets")


_NEURAL_FAST = dict(hidden=(16, 16), batch_size=64, max_steps=800, eval_every=25, patience=4,
                    learning_rate=3e-3)

BUILTIN_SETTINGS: dict[str, CheckSettings] = {
    # GMM-MI with its defaults (K chosen by 2-fold CV, 3 k-means++ inits) but at most 3
    # components: Gaussian data select K = 1. Measured at n = 500 (100 datasets): bias
    # +0.004, sd 0.035 per dataset, coverage 0.93.
    "gmm": CheckSettings(params=dict(max_components=3), accuracy_n=500, has_device=True),
    # KSG-1, k = 3, n = 1000: bias +0.006 (0.5 nats), sd 0.031; half-sample intervals are
    # conservative (mean std 0.037, coverage 0.98).
    "ksg": CheckSettings(has_device=True),
    # 1-D sliced MI equals MI (every slice is +-x, +-y); 16 slices, KSG base.
    "sliced": CheckSettings(params=dict(n_slices=16, n_permutations=0), has_device=True),
}
for _bound in ("mine", "nwj", "infonce", "smile"):
    BUILTIN_SETTINGS[_bound] = CheckSettings(
        params=dict(_NEURAL_FAST),
        n_bootstrap=50,
        accuracy_tol=0.03,
        pairs_rtol=1e-5,
        scale_rtol=1e-5,
        has_device=True,
        trust_cases=(),
    )


def settings_for(name: str) -> CheckSettings:
    """The built-in settings of ``name``, or the defaults for a plug-in."""
    return BUILTIN_SETTINGS.get(name, CheckSettings())
