"""Train P independent critics as one grouped program, with per-pair optimiser state,
early stopping, divergence handling and a held-out estimate with a bootstrap error.

Pair p estimates I(X_{x_index[p]}; Y_{y_index[p]}). All pairs share the training batches (the
same row indices each step) and the same initial critic, so a pair's trajectory depends only on
its own data and the seeds, never on its position in the group or on the other pairs:
a grouped pair equals the same pair trained alone (up to floating-point reduction order).

Per step, for the active pairs (P' <= P):
    x_b = X[x_index, rows_t], y_b = Y[y_index, rows_t]                 # (P', B, d)
    objective_p = bound-specific training objective (see below)        # (P',)
    g = d(sum_p objective_p)/d(theta)                                  # (P', D), rows independent
        (written-out backpropagation, :mod:`distmi.kernels.critic_backprop`)
    Adam (Kingma & Ba 2015, Alg. 1) on each row of theta, skipped for frozen rows.

Training objectives: mine, MINE's bias-corrected DV gradient (:func:`bounds.mine_surrogate`);
nwj, the NWJ bound; infonce, the InfoNCE bound on the B x B score matrix; smile, the
Jensen-Shannon objective (the SMILE value is read off the JS-trained critic).

Divergence: a pair whose objective or gradient is not finite is frozen at its last finite
parameters from that step on (the other pairs are untouched) and reported with
``stop_reason="diverged"``. Early stopping: every ``eval_every`` steps each pair's held-out
estimate v_k (first 8192 held-out rows, one product-of-marginals partner per row) is smoothed,
s_k = s_{k-1} + beta (v_k - s_{k-1}); a pair stops once s_k has not exceeded its best value by
``min_delta`` for ``patience`` evaluations. Stopped and diverged pairs leave the working set,
so stragglers cost little.

Estimate: the bound of the critic at its stop, on all held-out rows with ``n_negatives``
product-of-marginals partners per row; std and 95% interval from multinomial bootstrap
weights over held-out rows (the critic is held fixed, so training randomness is not included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from distmi.core.results import percentile_interval
from distmi.kernels import bounds
from distmi.kernels.critic_backprop import objective_and_grad
from distmi.kernels.critics import CriticSpec, paired_scores, score_matrix
from distmi.kernels.workspace import Workspace

_EVAL_BUDGET = 1 << 20  # largest activation tensor (elements) built during evaluation: 4 MB
# in float32, small enough that the allocator reuses it (a fresh 20-60 MB tensor costs a page
# fault per 4 kB, which on a VM made evaluation slower than training)
_MONITOR_ROWS = 8192  # held-out rows scored for early stopping (the estimate uses all of them)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and stopping settings shared by the group (already validated)."""

    bound: str
    batch_size: int = 128
    max_steps: int = 2000
    learning_rate: float = 1e-3
    eval_every: int = 50
    patience: int = 10
    smoothing: float = 0.3
    min_delta: float = 1e-3
    ema_alpha: float = 0.01
    clip: float = 5.0
    n_negatives: int = 16
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-8


@dataclass(frozen=True)
class GroupData:
    """Variables and pairs of one group.

    Attributes:
        x_vars: (Sx, N, dx) x variables; y_vars: (Sy, N, dy) y variables (same device/dtype).
        x_index, y_index: (P,) int64 variable indices of each pair.
        train_rows: (n_train,) int64 rows used for training.
        test_rows: (n_test,) int64 held-out rows used for the estimate.
    """

    x_vars: torch.Tensor
    y_vars: torch.Tensor
    x_index: torch.Tensor
    y_index: torch.Tensor
    train_rows: np.ndarray
    test_rows: np.ndarray


@dataclass
class GroupedFit:
    """Per-pair outcome, every array of shape (P,)."""

    value: np.ndarray
    std: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    steps: np.ndarray
    diverged_at_step: np.ndarray
    smoothed: np.ndarray
    stop_reason: list[str]
    n_test_used: int


def train_grouped(
    spec: CriticSpec,
    cfg: TrainConfig,
    data: GroupData,
    init: torch.Tensor,
    *,
    batch_seed: int,
    bootstrap_seed: int,
    n_bootstrap: int,
) -> GroupedFit:
    """Train one critic per pair of ``data`` and estimate each pair's MI on held-out rows.

    Args:
        spec: critic architecture; ``init``: (D,) one pair's initial parameters.
        batch_seed: seed of the training row stream (shared by all pairs).
        bootstrap_seed, n_bootstrap: multinomial resamples of the held-out rows for the
            standard error (ddof=1) and 95% percentile interval; 0 disables them (nan).
    """
    dev, dtype = data.x_vars.device, data.x_vars.dtype
    n_pairs = int(data.x_index.shape[0])
    out = _Outputs(n_pairs)
    heldout = _HeldOut(spec, cfg, data, bootstrap_seed, n_bootstrap)
    stream = np.random.default_rng(batch_seed)
    train_rows = data.train_rows

    slot_pair = torch.arange(n_pairs, device=dev)  # working slot -> original pair
    xi, yj = data.x_index.to(dev), data.y_index.to(dev)
    theta = init.to(device=dev, dtype=dtype).expand(n_pairs, -1).clone()
    adam_m = torch.zeros_like(theta, requires_grad=False)
    adam_v = torch.zeros_like(adam_m)
    alive = torch.ones(n_pairs, dtype=torch.bool, device=dev)
    dead_at = torch.full((n_pairs,), -1, dtype=torch.int64, device=dev)
    log_ema = torch.zeros(n_pairs, dtype=dtype, device=dev)
    smooth = torch.full((n_pairs,), math.nan, dtype=dtype, device=dev)
    best = torch.full((n_pairs,), -math.inf, dtype=dtype, device=dev)
    wait = torch.zeros(n_pairs, dtype=torch.int64, device=dev)

    workspace = Workspace()
    step = 0
    while slot_pair.numel() and step < cfg.max_steps:
        chunk = min(cfg.eval_every, cfg.max_steps - step)
        rows = train_rows[stream.integers(0, train_rows.size, size=(chunk, cfg.batch_size))]
        rows_t = torch.as_tensor(rows, device=dev)
        for k in range(chunk):
            step += 1
            xb = data.x_vars[xi[:, None], rows_t[k][None, :]]  # (P', B, dx)
            yb = data.y_vars[yj[:, None], rows_t[k][None, :]]  # (P', B, dy)
            objective, grad, log_ema = objective_and_grad(
                spec, cfg.bound, theta, xb, yb, log_ema, step == 1, cfg.ema_alpha, workspace
            )
            with torch.no_grad():
                finite = torch.isfinite(objective) & torch.isfinite(grad.sum(dim=1))
                dead_at = torch.where(alive & ~finite, step, dead_at)
                alive = alive & finite
                _adam_step(cfg, theta, grad, adam_m, adam_v, alive, step,
                           workspace.get("adam", tuple(theta.shape), theta))

        with torch.no_grad():
            a, b = heldout.terms(theta, xi, yj, n_rows=heldout.n_monitor)
            v = heldout.point(a, b)  # (P',)
            newly_dead = alive & ~torch.isfinite(v)
            dead_at = torch.where(newly_dead, step, dead_at)
            alive = alive & ~newly_dead
            smooth = torch.where(torch.isnan(smooth), v, smooth + cfg.smoothing * (v - smooth))
            improved = smooth > best + cfg.min_delta
            best = torch.where(improved, smooth, best)
            wait = torch.where(improved, 0, wait + 1)
            done = ~alive | (wait >= cfg.patience) | (step >= cfg.max_steps)
            if bool(done.any()):
                idx = torch.nonzero(done).squeeze(1)
                a_fin, b_fin = heldout.terms(theta[idx], xi[idx], yj[idx],
                                             cfg.n_negatives)
                out.record(
                    heldout, slot_pair[idx], a_fin, b_fin, smooth[idx], dead_at[idx],
                    wait[idx] >= cfg.patience, step,
                )
                keep = torch.nonzero(~done).squeeze(1)
                slot_pair, xi, yj = slot_pair[keep], xi[keep], yj[keep]
                theta = theta[keep]
                adam_m, adam_v = adam_m[keep], adam_v[keep]
                alive, dead_at, log_ema = alive[keep], dead_at[keep], log_ema[keep]
                smooth, best, wait = smooth[keep], best[keep], wait[keep]
    return out.finish(heldout.n_used)


def _adam_step(
    cfg: TrainConfig,
    theta: torch.Tensor,
    grad: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    alive: torch.Tensor,
    step: int,
    scratch: torch.Tensor | None = None,
) -> None:
    """One Adam ascent step on every alive row of theta (P', D), in place.

    All active rows started together, so they share the step count t used in the bias
    corrections; frozen rows keep their parameters (their moments are irrelevant). ``grad`` is
    overwritten (its frozen rows zeroed); ``scratch`` (P', D), if given, holds the denominator
    instead of a fresh tensor per step.
    """
    frozen = ~alive[:, None]
    g = grad.masked_fill_(frozen, 0.0)  # also clears non-finite gradients of frozen rows
    m.mul_(cfg.beta1).add_(g, alpha=1.0 - cfg.beta1)
    v.mul_(cfg.beta2).addcmul_(g, g, value=1.0 - cfg.beta2)
    bias1 = 1.0 - cfg.beta1**step
    bias2 = 1.0 - cfg.beta2**step
    denom = torch.sqrt(v, out=scratch) if scratch is not None else v.sqrt()
    denom.div_(math.sqrt(bias2)).add_(cfg.adam_eps)
    denom.masked_fill_(frozen, math.inf)  # m / inf = 0: frozen rows do not move
    theta.addcdiv_(m, denom, value=cfg.learning_rate / bias1)  # ascent: maximise the bound


class _HeldOut:
    """Held-out rows of a group and the chunked evaluation of per-row bound terms."""

    def __init__(
        self,
        spec: CriticSpec,
        cfg: TrainConfig,
        data: GroupData,
        bootstrap_seed: int,
        n_bootstrap: int,
    ) -> None:
        self.spec, self.cfg = spec, cfg
        self.workspace = Workspace()  # activation buffers shared by all evaluation chunks
        rows = data.test_rows
        if cfg.bound == "infonce":  # whole blocks of B rows; InfoNCE is defined per batch
            rows = rows[: (rows.size // cfg.batch_size) * cfg.batch_size]
        self.n_used = int(rows.size)
        unit = cfg.batch_size if cfg.bound == "infonce" else 1
        self.n_monitor = min(self.n_used, max(unit, _MONITOR_ROWS // unit * unit))
        rows_t = torch.as_tensor(rows, device=data.x_vars.device)
        self.x = data.x_vars[:, rows_t]  # (Sx, n, dx)
        self.y = data.y_vars[:, rows_t]  # (Sy, n, dy)
        dtype, dev = data.x_vars.dtype, data.x_vars.device
        self.boot: torch.Tensor | None = None
        if n_bootstrap > 0:
            rng = np.random.default_rng(bootstrap_seed)
            counts = rng.multinomial(self.n_used, np.full(self.n_used, 1.0 / self.n_used),
                                     size=n_bootstrap)  # (R, n)
            self.boot = torch.as_tensor(counts / self.n_used, dtype=dtype, device=dev)
        widths = [*spec.hidden, spec.embed_dim if spec.kind == "separable" else 1]
        self.width = max(widths) * (2 if spec.kind == "separable" else 1)

    def terms(
        self,
        theta: torch.Tensor,
        xi: torch.Tensor,
        yj: torch.Tensor,
        n_negatives: int = 1,
        n_rows: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-row terms (a, b) of every active pair, (P', n) each (b is None for InfoNCE).

        Scores the first ``n_rows`` held-out rows (all by default). Row i's product-of-marginals
        partners are y_(i+1), ..., y_(i+K) (cyclic), K = ``n_negatives``: held-out rows are a
        random subset in random order, so these are independent of x_i.
        """
        n_pairs, n = theta.shape[0], n_rows or self.n_used
        infonce = self.cfg.bound == "infonce"
        unit = self.cfg.batch_size if infonce else 1  # rows evaluated together
        cost = self.width * (unit * unit if infonce and self.spec.kind == "concat" else unit)
        pc = max(1, min(n_pairs, _EVAL_BUDGET // max(cost, 1)))
        a = theta.new_empty((n_pairs, n))
        b = None if infonce else theta.new_empty((n_pairs, n))
        arange = torch.arange(n, device=theta.device)
        for p0 in range(0, n_pairs, pc):
            ps = slice(p0, min(p0 + pc, n_pairs))
            units = max(1, _EVAL_BUDGET // (cost * (ps.stop - p0)))
            rc = units * unit
            for r0 in range(0, n, rc):
                rs = slice(r0, min(r0 + rc, n))
                x = self.x[:, rs][xi[ps]]  # (pc, r, dx)
                y = self.y[:, rs][yj[ps]]  # (pc, r, dy)
                if infonce:
                    a[ps, rs] = self._infonce_rows(theta[ps], x, y)
                    continue
                a[ps, rs] = paired_scores(self.spec, theta[ps], x, y, self.workspace)
                t_marg = torch.stack([
                    paired_scores(self.spec, theta[ps], x,
                                  self.y[:, (arange[rs] + k) % n][yj[ps]], self.workspace)
                    for k in range(1, n_negatives + 1)
                ], dim=2)  # (pc, r, K)
                b[ps, rs] = bounds.heldout_marginal_rows(self.cfg.bound, t_marg, self.cfg.clip)
        return a, b

    def _infonce_rows(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
        """InfoNCE row terms over consecutive blocks of B rows; (pc, r, d) -> (pc, r)."""
        bsz, n_pairs = self.cfg.batch_size, theta.shape[0]
        out = []
        for s in range(0, x.shape[1], bsz):
            scores = score_matrix(self.spec, theta, x[:, s : s + bsz], y[:, s : s + bsz])
            out.append(bounds.infonce_rows(scores))
        return torch.cat(out, dim=1) if out else theta.new_empty((n_pairs, 0))

    def point(self, a: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        """Held-out estimate of each pair from its per-row terms (P', n) -> (P',)."""
        uniform = a.new_full((1, a.shape[1]), 1.0 / a.shape[1])
        return bounds.weighted_values(self.cfg.bound, a, b, uniform)[:, 0]


class _Outputs:
    """Collects the per-pair results as pairs leave the working set."""

    def __init__(self, n_pairs: int) -> None:
        nan = np.full(n_pairs, np.nan)
        self.value, self.std, self.lo, self.hi, self.smooth = (nan.copy() for _ in range(5))
        self.steps = np.zeros(n_pairs, dtype=np.int64)
        self.dead_at = np.full(n_pairs, -1, dtype=np.int64)
        self.reason = ["max_steps"] * n_pairs

    def record(
        self,
        heldout: _HeldOut,
        pairs: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor | None,
        smooth: torch.Tensor,
        dead_at: torch.Tensor,
        patience_hit: torch.Tensor,
        step: int,
    ) -> None:
        ids = pairs.cpu().numpy()
        vals = heldout.point(a, b).double().cpu().numpy()
        self.value[ids] = np.where(np.isfinite(vals), vals, np.nan)
        self.smooth[ids] = smooth.double().cpu().numpy()
        dead = dead_at.cpu().numpy()
        self.dead_at[ids] = dead
        self.steps[ids] = np.where(dead > 0, dead - 1, step)
        for pid, d, hit in zip(ids, dead, patience_hit.cpu().numpy(), strict=True):
            self.reason[pid] = "diverged" if d > 0 else ("patience" if hit else "max_steps")
        if heldout.boot is None:
            return
        reps = bounds.weighted_values(heldout.cfg.bound, a, b, heldout.boot).double().cpu().numpy()
        for pid, rep in zip(ids, reps, strict=True):
            if np.all(np.isfinite(rep)) and np.isfinite(self.value[pid]):
                self.std[pid] = float(np.std(rep, ddof=1))
                self.lo[pid], self.hi[pid] = percentile_interval(rep)

    def finish(self, n_used: int) -> GroupedFit:
        return GroupedFit(
            value=self.value, std=self.std, ci_low=self.lo, ci_high=self.hi,
            steps=self.steps, diverged_at_step=self.dead_at, smoothed=self.smooth,
            stop_reason=self.reason, n_test_used=n_used,
        )
