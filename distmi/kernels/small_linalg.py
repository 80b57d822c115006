"""Cholesky factors and inverses of many tiny SPD matrices, unrolled over the dimension.

Batched LAPACK calls on thousands of 2x2 .. 6x6 matrices are dominated by per-matrix
overhead on CPU (measured here: ~8 ms for 66 2x2 factorisations). For D <= 6 the
factorisation is unrolled into O(D^3) elementwise tensor operations over the whole batch
(Cholesky-Banachiewicz), which costs microseconds. Larger D falls back to torch.linalg.
"""

from __future__ import annotations

import torch

UNROLL_MAX_DIM = 6


def cholesky_unrolled(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower Cholesky factor of (..., D, D) SPD matrices.

    Returns:
        chol: (..., D, D) lower-triangular (garbage where not positive definite).
        ok: (...) bool, True where the matrix was numerically positive definite.
    """
    d = cov.shape[-1]
    if d > UNROLL_MAX_DIM:
        chol, info = torch.linalg.cholesky_ex(cov)
        return chol, info == 0
    tiny = torch.finfo(cov.dtype).tiny
    rows: list[list[torch.Tensor | None]] = [[None] * d for _ in range(d)]
    ok = torch.ones(cov.shape[:-2], dtype=torch.bool, device=cov.device)
    for j in range(d):
        s = cov[..., j, j]
        for k in range(j):
            s = s - rows[j][k] ** 2
        ok = ok & (s > 0)
        diag = torch.sqrt(torch.clamp(s, min=tiny))
        rows[j][j] = diag
        for i in range(j + 1, d):
            t = cov[..., i, j]
            for k in range(j):
                t = t - rows[i][k] * rows[j][k]
            rows[i][j] = t / diag
    zero = torch.zeros_like(cov[..., 0, 0])
    chol = torch.stack(
        [torch.stack([rows[i][j] if j <= i else zero for j in range(d)], -1) for i in range(d)],
        -2,
    )
    return chol, ok


def tril_inverse_unrolled(chol: torch.Tensor) -> torch.Tensor:
    """Inverse of (..., D, D) lower-triangular matrices by forward substitution."""
    d = chol.shape[-1]
    if d > UNROLL_MAX_DIM:
        eye = torch.eye(d, dtype=chol.dtype, device=chol.device).expand_as(chol)
        return torch.linalg.solve_triangular(chol, eye, upper=False)
    inv: list[list[torch.Tensor | None]] = [[None] * d for _ in range(d)]
    for i in range(d):
        inv[i][i] = 1.0 / chol[..., i, i]
        for j in range(i):
            t = chol[..., i, j] * inv[j][j]
            for k in range(j + 1, i):
                t = t + chol[..., i, k] * inv[k][j]
            inv[i][j] = -t * inv[i][i]
    zero = torch.zeros_like(chol[..., 0, 0])
    return torch.stack(
        [torch.stack([inv[i][j] if j <= i else zero for j in range(d)], -1) for i in range(d)],
        -2,
    )
