"""Random slices for sliced mutual information, and the per-slice Gaussian closed form.

Sliced MI (Goldfeld & Greenewald 2021, arXiv:2110.05279, Def. 1) averages MI over random
one-dimensional projections,

    SMI(X; Y) = E_{theta ~ U(S^{dx-1}), phi ~ U(S^{dy-1})} [ I(theta^T X; phi^T Y) ],

and k-sliced MI (Goldfeld, Greenewald, Nuradha & Reeves 2022, arXiv:2206.08526, eq. 2) projects
onto k-dimensional subspaces drawn from the Haar measure on the Stiefel manifold
St(k, d) = {A in R^{d x k} : A^T A = I_k}. A uniform direction is a normalised standard Gaussian
vector; a Haar frame is Q from the QR factorisation of a d x k standard Gaussian matrix with the
signs of diag(R) moved into Q (Mezzadri 2007, "How to generate random matrices from the
classical compact groups", sec. 5).

Slice j is drawn from block j // SLICE_BLOCK, seeded by (root, role, block): the first m slices
are the same for every m, and a slice never depends on how slices are batched.
"""

from __future__ import annotations

import numpy as np

from distmi.core.seeds import derive_rng

SLICE_BLOCK = 256


def random_frames(
    d: int, n_slices: int, slice_dim: int, seed: int, *key: str | int
) -> np.ndarray:
    """Haar-random orthonormal frames, shape (n_slices, d, slice_dim).

    ``slice_dim = 1`` gives unit vectors uniform on S^{d-1}. ``key`` names the role of the
    frames (e.g. ``"x"``, or ``("bootstrap", 3, "x")``) so different roles get independent draws.
    """
    n_blocks = -(-n_slices // SLICE_BLOCK)
    out = np.empty((n_blocks * SLICE_BLOCK, d, slice_dim))
    for blk in range(n_blocks):
        rng = derive_rng(seed, "slices", *key, blk)
        g = rng.standard_normal((SLICE_BLOCK, d, slice_dim))
        if slice_dim == 1:
            g /= np.linalg.norm(g, axis=1, keepdims=True)
        else:
            q, r = np.linalg.qr(g)
            signs = np.sign(np.diagonal(r, axis1=1, axis2=2))
            signs[signs == 0] = 1.0
            g = q * signs[:, None, :]
        out[blk * SLICE_BLOCK : (blk + 1) * SLICE_BLOCK] = g
    return out[:n_slices]


def project(data: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """All projections with one matrix product.

    Args:
        data: (n, d) samples.
        frames: (m, d, s) orthonormal frames.
    Returns:
        (m, n, s): projection of every sample onto every frame.
    """
    m, d, s = frames.shape
    flat = data @ frames.transpose(1, 0, 2).reshape(d, m * s)  # (n, m*s)
    return np.ascontiguousarray(flat.reshape(len(data), m, s).transpose(1, 0, 2))


def _logdet_cov(z: np.ndarray) -> np.ndarray:
    """log det of the sample covariance (ddof=0) of each (..., n, s) sample -> (...)."""
    zc = z - z.mean(axis=-2, keepdims=True)
    cov = np.einsum("...ni,...nj->...ij", zc, zc) / z.shape[-2]
    return np.linalg.slogdet(cov)[1]


def gaussian_mi(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Gaussian MI of each slice: I = 1/2 log(det S_xx det S_yy / det S), in nats.

    This is the MI of the Gaussian with the slice's sample covariance: exact for jointly
    Gaussian slices, an approximation otherwise (it only sees linear dependence). For s = 1 it
    is -1/2 log(1 - r^2). Rounding negatives are clipped to 0.

    Args:
        px: (m, n, s); py: (m, n, t).
    Returns:
        (m,) nats.
    """
    joint = np.concatenate([px, py], axis=-1)
    value = 0.5 * (_logdet_cov(px) + _logdet_cov(py) - _logdet_cov(joint))
    return np.maximum(value, 0.0)


def gaussian_mi_labels(px: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Class-conditional Gaussian MI of each slice with a label:

        I = 1/2 log det S_x - sum_c p_c 1/2 log det S_{x|c},   p_c the empirical class prior.

    This treats both H(theta^T X) and each H(theta^T X | c) as Gaussian entropies. When the
    classes are Gaussian, X is a mixture and H(X) <= 1/2 log det(2 pi e S_x), so the value is an
    upper approximation of the MI (exact only when all classes share one distribution).

    Args:
        px: (m, n, s); labels: (n,) int codes.
    Returns:
        (m,) nats.
    """
    value = 0.5 * _logdet_cov(px)
    n = labels.size
    for c in np.unique(labels):
        members = labels == c
        if members.sum() < 2:
            continue
        value -= 0.5 * members.sum() / n * _logdet_cov(px[:, members])
    return value


def gaussian_smi_closed_form(rho: float, d: int, tol: float = 1e-15) -> float:
    """SMI of X, Y in R^d with covariance [[I, rho I], [rho I, I]], in nats.

    theta^T X and phi^T Y are standard normal with correlation rho t, t = theta^T phi, and
    t^2 ~ Beta(1/2, (d-1)/2), so with Pochhammer symbols (a)_k

        SMI = E[-1/2 log(1 - rho^2 t^2)] = 1/2 sum_{k>=1} rho^{2k} (1/2)_k / (k (d/2)_k),

    which is -1/2 log(1 - rho^2) = I(X; Y) for d = 1.
    """
    if not -1.0 < rho < 1.0:
        raise ValueError(f"rho must be in (-1, 1), got {rho}")
    r2 = rho * rho
    total, ratio, power, k = 0.0, 1.0, 1.0, 0
    while True:
        k += 1
        ratio *= (k - 0.5) / (k - 1 + 0.5 * d)  # (1/2)_k / (d/2)_k
        power *= r2
        term = power * ratio / k
        total += term
        if term < tol * max(total, 1e-300) or k > 10_000_000:
            return 0.5 * total
