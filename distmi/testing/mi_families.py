"""Bivariate (1-D x, 1-D y) distributions with known mutual information, in nats.

The families follow the one-dimensional tasks of the benchmark of Czyz et al. (NeurIPS 2023,
"Beyond normal: on the evaluation of mutual information estimators") plus the Student-t and
uniform cases that are hard for Gaussian mixtures:

- **Gaussian copula under monotone maps.** (u, v) bivariate normal with correlation rho;
  MI = -1/2 log(1 - rho^2) is unchanged by any strictly increasing map of each variable, so the
  ``gaussian``, ``half_cube`` (t |t|^{1/2}, longer tails), ``wiggly`` (identity plus small
  sines), ``uniform_margins`` (normal CDF: sharp edges at 0 and 1) and ``bimodal`` (inverse
  CDFs of two-component normal mixtures) tasks share one closed form.
- **Additive uniform noise.** x ~ U(0, 1), y = x + e, e ~ U(-eps, eps). y is the convolution
  of uniforms of widths 1 and 2 eps, a trapezoid; with a = min(1, 2 eps), b = max(1, 2 eps),
  h(y) = log b + a / (2 b) and MI = h(y) - log(2 eps), i.e. eps - log(2 eps) for eps <= 1/2.
- **Student-t.** (x, y) = z / sqrt(w / nu), z ~ N(0, [[1, rho], [rho, 1]]), w ~ chi^2_nu.
  MI = -1/2 log(1 - rho^2) + f(nu) + f(nu + 2) - 2 f(nu + 1) with
  f(t) = log Gamma(t/2) - (t/2) psi(t/2) (Arellano-Valle, Contreras-Reyes and Genton 2013).
  Heavy tails carry information even at rho = 0 (0.2242 nats for nu = 1).
- **Gaussian mixtures** (the benchmark's "X" and "AI" shapes): truth by numerical
  integration: a trapezoid rule on a fine grid for the joint entropy (spectrally accurate for
  these smooth, fast-decaying densities) and adaptive quadrature for the 1-D marginals.

``sample(name, n, rng)`` draws one dataset; ``FAMILIES`` maps names to their true MI.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import integrate, special, stats

RHO = 0.75  # the benchmark's default Gaussian correlation


def gaussian_mi(rho: float) -> float:
    """I = -1/2 log(1 - rho^2) of a bivariate normal."""
    return -0.5 * math.log1p(-rho * rho)


def additive_uniform_mi(eps: float) -> float:
    """MI of x ~ U(0,1), y = x + U(-eps, eps) (see the module docstring)."""
    a, b = min(1.0, 2 * eps), max(1.0, 2 * eps)
    return math.log(b) + a / (2 * b) - math.log(2 * eps)


def student_t_mi(nu: float, rho: float = 0.0) -> float:
    """MI of a bivariate Student-t with nu degrees of freedom and dispersion correlation rho."""

    def f(t: float) -> float:
        return float(special.gammaln(t / 2) - t / 2 * special.digamma(t / 2))

    return gaussian_mi(rho) + f(nu) + f(nu + 2) - 2 * f(nu + 1)


def _normal_pair(rng: np.random.Generator, n: int, rho: float) -> tuple[np.ndarray, np.ndarray]:
    u = rng.standard_normal(n)
    v = rho * u + math.sqrt(1 - rho * rho) * rng.standard_normal(n)
    return u, v


def _half_cube(t: np.ndarray) -> np.ndarray:
    return t * np.sqrt(np.abs(t))


def _wiggly_x(t: np.ndarray) -> np.ndarray:
    return t + 0.4 * np.sin(t) + 0.2 * np.sin(1.7 * t + 1) + 0.03 * np.sin(3.3 * t - 2.5)


def _wiggly_y(t: np.ndarray) -> np.ndarray:
    return t - 0.4 * np.sin(0.4 * t) + 0.17 * np.sin(1.3 * t + 3.5) + 0.02 * np.sin(4.3 * t - 2.5)


@lru_cache(maxsize=4)
def _mixture_icdf_table(weights: tuple[float, ...], means: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    grid = np.linspace(min(means) - 12, max(means) + 12, 200_001)
    cdf = sum(w * stats.norm.cdf(grid - m) for w, m in zip(weights, means, strict=True))
    keep = np.concatenate([[True], np.diff(cdf) > 0])  # strictly increasing for interpolation
    return cdf[keep], grid[keep]


def _mixture_icdf(u: np.ndarray, weights: tuple[float, ...], means: tuple[float, ...]) -> np.ndarray:
    """A strictly increasing map of (0, 1) onto the line, close to the inverse CDF of a
    unit-variance normal mixture (exactness does not matter: any strictly increasing map
    leaves MI unchanged)."""
    cdf, grid = _mixture_icdf_table(weights, means)
    return np.interp(u, cdf, grid)


def _copula_task(transform: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]):
    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        u, v = _normal_pair(rng, n, RHO)
        return transform(u, v)

    return draw


def _bimodal(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pu, pv = stats.norm.cdf(u), stats.norm.cdf(v)
    return (_mixture_icdf(pu, (0.3, 0.7), (0.0, 5.0)), _mixture_icdf(pv, (0.5, 0.5), (-1.0, 3.0)))


def _additive(eps: float):
    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.random(n)
        return x, x + rng.uniform(-eps, eps, n)

    return draw


def _student(nu: float, rho: float):
    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        u, v = _normal_pair(rng, n, rho)
        scale = np.sqrt(rng.chisquare(nu, n) / nu)
        return u / scale, v / scale

    return draw


# ---------------------------------------------------------------- Gaussian mixtures


@dataclass(frozen=True)
class Mixture2D:
    """A bivariate Gaussian mixture: weights (K,), means (K, 2), covariances (K, 2, 2)."""

    weights: tuple[float, ...]
    means: tuple[tuple[float, float], ...]
    covariances: tuple[tuple[tuple[float, float], tuple[float, float]], ...]

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        comp = rng.choice(len(self.weights), size=n, p=np.asarray(self.weights))
        chol = np.linalg.cholesky(np.asarray(self.covariances))
        z = np.einsum("nij,nj->ni", chol[comp], rng.standard_normal((n, 2)))
        xy = np.asarray(self.means)[comp] + z
        return xy[:, 0], xy[:, 1]

    def log_density(self, pts: np.ndarray) -> np.ndarray:
        """log p at points (M, 2)."""
        dens = np.zeros(len(pts))
        for w, m, c in zip(self.weights, self.means, self.covariances, strict=True):
            prec = np.linalg.inv(np.asarray(c))
            d = pts - np.asarray(m)
            quad = prec[0, 0] * d[:, 0] ** 2 + 2 * prec[0, 1] * d[:, 0] * d[:, 1] + prec[1, 1] * d[:, 1] ** 2
            dens += w * np.exp(-0.5 * quad) / (2 * math.pi * math.sqrt(np.linalg.det(np.asarray(c))))
        return np.log(np.maximum(dens, 1e-300))

    def marginal_entropy(self, axis: int) -> float:
        w = np.asarray(self.weights)
        mu = np.asarray(self.means)[:, axis]
        sd = np.sqrt(np.asarray(self.covariances)[:, axis, axis])

        def integrand(t: float) -> float:
            p = float(np.sum(w * stats.norm.pdf(t, mu, sd)))
            return -p * math.log(p) if p > 0 else 0.0

        # split the line at every component's mean so each piece is resolved
        knots = np.unique(np.concatenate([mu - 12 * sd, mu, mu + 12 * sd]))
        return float(sum(integrate.quad(integrand, a, b, limit=200, epsabs=1e-12)[0]
                         for a, b in itertools.pairwise(knots)))

    def joint_entropy(self, step: float) -> float:
        """-E log p by the trapezoid rule on a grid of spacing ``step``."""
        mu = np.asarray(self.means)
        sd = np.sqrt(np.asarray(self.covariances)[:, [0, 1], [0, 1]])
        lo, hi = (mu - 10 * sd).min(0), (mu + 10 * sd).max(0)
        gx = np.arange(lo[0], hi[0] + step, step)
        gy = np.arange(lo[1], hi[1] + step, step)
        total = 0.0
        for start in range(0, len(gx), 100):  # row blocks bound the memory
            xx, yy = np.meshgrid(gx[start:start + 100], gy, indexing="ij")
            lp = self.log_density(np.stack([xx.ravel(), yy.ravel()], 1))
            total += float(np.sum(-np.exp(lp) * lp))
        return total * step * step

    def mutual_information(self, step: float) -> float:
        return self.marginal_entropy(0) + self.marginal_entropy(1) - self.joint_entropy(step)


def _canonical(rho: float) -> tuple[tuple[float, float], tuple[float, float]]:
    return ((1.0, rho), (rho, 1.0))


X_MIXTURE = Mixture2D(
    weights=(0.5, 0.5),
    means=((0.0, 0.0), (0.0, 0.0)),
    covariances=(_canonical(-0.9), _canonical(0.9)),
)
_AI_COV = math.sqrt(0.04 * 0.2) * 0.95
AI_MIXTURE = Mixture2D(
    weights=(1 / 6,) * 6,
    means=((1.0, 0.0), (1.0, 1.0), (1.0, -1.0), (-0.8, -0.2), (-1.2, 0.0), (-0.4, 0.0)),
    covariances=(
        ((0.01, 0.0), (0.0, 0.2)),
        ((0.05, 0.0), (0.0, 0.001)),
        ((0.05, 0.0), (0.0, 0.001)),
        ((0.03, 0.0), (0.0, 0.001)),
        ((0.04, _AI_COV), (_AI_COV, 0.2)),
        ((0.04, -_AI_COV), (-_AI_COV, 0.2)),
    ),
)


@lru_cache(maxsize=4)
def mixture_mi(name: str) -> float:
    """True MI of a named mixture by numerical integration (about a second, cached)."""
    mix = {"x_mixture": X_MIXTURE, "ai_mixture": AI_MIXTURE}[name]
    step = 0.02 if name == "x_mixture" else 0.008
    return mix.mutual_information(step)


# ---------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Family:
    """A named distribution: ``draw(rng, n) -> (x, y)`` and its true MI (callable, cached)."""

    name: str
    draw: Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]
    truth: Callable[[], float]
    description: str


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("gaussian", _copula_task(lambda u, v: (u, v)), lambda: gaussian_mi(RHO),
               "bivariate normal, rho = 0.75"),
        Family("half_cube", _copula_task(lambda u, v: (_half_cube(u), _half_cube(v))),
               lambda: gaussian_mi(RHO), "normal rho = 0.75 under t |t|^(1/2)"),
        Family("wiggly", _copula_task(lambda u, v: (_wiggly_x(u), _wiggly_y(v))),
               lambda: gaussian_mi(RHO), "normal rho = 0.75 under wiggly increasing maps"),
        Family("uniform_margins",
               _copula_task(lambda u, v: (stats.norm.cdf(u), stats.norm.cdf(v))),
               lambda: gaussian_mi(RHO), "normal rho = 0.75 under the normal CDF (edges)"),
        Family("bimodal", _copula_task(_bimodal), lambda: gaussian_mi(RHO),
               "normal rho = 0.75 with bimodal margins"),
        Family("additive_0.1", _additive(0.1), lambda: additive_uniform_mi(0.1),
               "x ~ U(0,1), y = x + U(-0.1, 0.1)"),
        Family("additive_0.75", _additive(0.75), lambda: additive_uniform_mi(0.75),
               "x ~ U(0,1), y = x + U(-0.75, 0.75)"),
        Family("student_t_1", _student(1.0, 0.0), lambda: student_t_mi(1.0),
               "bivariate Student-t, 1 dof, identity dispersion"),
        Family("student_t_2", _student(2.0, 0.0), lambda: student_t_mi(2.0),
               "bivariate Student-t, 2 dof, identity dispersion"),
        Family("student_t_5", _student(5.0, RHO), lambda: student_t_mi(5.0, RHO),
               "bivariate Student-t, 5 dof, dispersion correlation 0.75"),
        Family("x_mixture", X_MIXTURE.sample, lambda: mixture_mi("x_mixture"),
               "two Gaussians with correlations +-0.9 (an X)"),
        Family("ai_mixture", AI_MIXTURE.sample, lambda: mixture_mi("ai_mixture"),
               "six narrow Gaussians forming the letters AI"),
    ]
}


def sample(name: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One dataset of family ``name``: x, y of shape (n,)."""
    return FAMILIES[name].draw(rng, n)


def batch(name: str, n: int, n_datasets: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_datasets`` independent datasets as columns: X, Y of shape (n, n_datasets)."""
    rng = np.random.default_rng(seed)
    cols = [sample(name, n, rng) for _ in range(n_datasets)]
    return np.stack([c[0] for c in cols], 1), np.stack([c[1] for c in cols], 1)
