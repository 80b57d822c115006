"""Closed-form and numerically integrated ground truth shared by the GMM tests."""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, special, stats


def gaussian_pair(rng: np.random.Generator, n: int, rho: float) -> tuple[np.ndarray, np.ndarray, float]:
    """x, y standard normal with correlation rho; I = -1/2 log(1 - rho^2)."""
    x = rng.normal(size=n)
    y = rho * x + math.sqrt(1 - rho**2) * rng.normal(size=n)
    return x, y, -0.5 * math.log(1 - rho**2)


def gaussian_mi_from_cov(cov: np.ndarray, dx: int) -> float:
    """I(X;Y) = 1/2 log(det S_x det S_y / det S) for a joint Gaussian."""
    sx, sy = cov[:dx, :dx], cov[dx:, dx:]
    return 0.5 * (np.linalg.slogdet(sx)[1] + np.linalg.slogdet(sy)[1] - np.linalg.slogdet(cov)[1])


def gamma_exponential(rng: np.random.Generator, n: int, alpha: float) -> tuple[np.ndarray, np.ndarray, float]:
    """x ~ Gamma(alpha, 1), y | x ~ Exp(rate x); returns (ln x, ln y) and psi(alpha+1) - ln alpha."""
    x = rng.gamma(alpha, 1.0, size=n)
    y = rng.exponential(1.0 / x)
    return np.log(x), np.log(y), float(special.digamma(alpha + 1) - math.log(alpha))


def categorical_truth(p1: float, shift: float = 2.0) -> float:
    """I(X;Y) for y ~ Bernoulli(p1), x | y ~ N(shift * y, 1), by numerical integration."""
    prior = np.array([1.0 - p1, p1])

    def term(c: int) -> float:
        def integrand(x: float) -> float:
            pc = stats.norm.pdf(x, shift * c, 1.0)
            mix = prior[0] * stats.norm.pdf(x, 0.0, 1.0) + prior[1] * stats.norm.pdf(x, shift, 1.0)
            return pc * (math.log(pc) - math.log(mix))

        return integrate.quad(integrand, shift * c - 12, shift * c + 12, limit=200)[0]

    return float(prior[0] * term(0) + prior[1] * term(1))
