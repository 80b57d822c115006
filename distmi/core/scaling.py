"""Scale-robust standardisation and the "constant variable" rule, shared by every estimator.

Mutual information is invariant under an affine map of each variable, so the estimators work
on z-scores. Computed naively, ``x.std()`` squares the values: it overflows to ``inf`` for
|x| above ~1e154 (and the z-scores become 0) and loses every digit below ~1e-162. Each
variable (one slice along ``axis``) is therefore standardised in three steps:

1. pre-scale by ``s = 2^e``, the power of two with ``max|x| / s`` in [0.5, 1)
   (:func:`power_of_two_scale`). Dividing by a power of two only changes the exponent, so
   ``u = x / s`` is exact (unless it becomes subnormal) and lies in [-1, 1];
2. ``mean(u)`` and ``sd(u) = sqrt(mean((u - mean u)^2))`` (ddof 0): no overflow or underflow;
3. ``z = (u - mean u) / sd(u)``.

Because every rounding step commutes with an exact power-of-two scale, ``z`` is bit-identical
to the naive z-score wherever the naive one is finite, and data multiplied by ``2^k`` give
bit-identical z-scores (hence bit-identical estimates) for any ``k`` that keeps them normal
(|k| up to ~1000, i.e. 1e+-300).

A variable is *constant* when its spread is at most :data:`CONSTANT_RTOL` times its own
largest magnitude, ``max(x) - min(x) <= 1e-12 * max|x|`` (all zeros included): the rule is
relative, so data in units of 1e-13 are as usable as data in units of 1. Such a variable
carries at most a few thousand distinct representable values around its offset: rounding
noise, not a measurement.
"""

from __future__ import annotations

import numpy as np

CONSTANT_RTOL = 1e-12


def power_of_two_scale(a: np.ndarray, axis: int | tuple[int, ...] | None = -1) -> np.ndarray:
    """The power of two ``2^e`` with ``max|a| / 2^e`` in [0.5, 1), per slice along ``axis``.

    Args:
        a: finite float array.
        axis: the sample axis (or axes); ``None`` gives one scale for the whole array.
    Returns:
        float64 array broadcastable against ``a`` (``keepdims``); 1.0 where ``max|a| = 0``.
    """
    peak = np.max(np.abs(a), axis=axis, keepdims=True)
    _, exponent = np.frexp(peak)
    return np.ldexp(1.0, exponent)


def constant_mask(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """True for every variable (slice along ``axis``) that is constant up to rounding.

    Args:
        a: finite float array, e.g. (n, d) with ``axis=0`` for columns.
    Returns:
        bool array of ``a``'s shape without ``axis``.
    """
    a = np.asarray(a, dtype=np.float64)
    u = a / power_of_two_scale(a, axis)  # |u| <= 1: the spread below cannot overflow
    spread = np.max(u, axis=axis) - np.min(u, axis=axis)
    return spread <= CONSTANT_RTOL * np.max(np.abs(u), axis=axis)


def standardize(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """Z-scores (mean 0, sd 1 with ddof 0) of each variable along ``axis``, for any scale.

    Constant variables (see :func:`constant_mask`; estimators reject them before) give zeros.

    Args:
        a: finite array, e.g. (B, n) rows of n samples with ``axis=1``.
    Returns:
        float64 array of the same shape.
    """
    a = np.asarray(a, dtype=np.float64)
    u = a / power_of_two_scale(a, axis)
    centred = u - u.mean(axis=axis, keepdims=True)
    sd = np.sqrt((centred * centred).mean(axis=axis, keepdims=True))
    return centred / np.where(sd > 0, sd, 1.0)


def prescale(a: np.ndarray) -> tuple[np.ndarray, float]:
    """``(a / s, s)`` with one power-of-two scale ``s`` for the whole array (see module doc).

    For estimators that are invariant under a common scale of all coordinates but not under a
    separate scale per coordinate (sliced MI projects raw coordinates; entropy changes by
    ``d log s``): the returned array is exactly ``a / s`` and lies in [-1, 1].
    """
    a = np.asarray(a, dtype=np.float64)
    s = float(power_of_two_scale(a, axis=None).reshape(()))
    return a / s, s
