"""Hand-written forward and backward passes of the grouped critics (no autograd graph).

Training spends nearly all its time in the critic MLPs, and autograd on CPU pays for it twice:
one dispatcher and graph node per operation, and saved tensors that are fresh 5-20 MB
allocations every step. Here the forward pass keeps only the post-activation of every layer,
and the backward pass is the chain rule written out per layer (shapes as in
:mod:`distmi.kernels.critics`: P pairs, M rows, weights W (P, f_in, f_out), biases (P, 1, f_out)):

    forward   a_l = h_{l-1} W_l + b_l,   h_l = act(a_l)   (no activation after the last layer)
    backward  given D_l = dL/da_l (P, M, f_out):
              dL/dW_l = h_{l-1}^T D_l          (P, f_in, f_out, one batched GEMM)
              dL/db_l = sum_m D_l              (P, f_out)
              D_{l-1} = (D_l W_l^T) * act'(a_{l-1})

The activation derivative is read off the stored output h = act(a): relu' = [h > 0],
tanh' = 1 - h^2, elu' = 1 if h > 0 else h + 1 (alpha = 1). Layers of fan-in <= 4 (the first
layer of a scalar pair) and of fan-out 1 (the score layer) are broadcast multiply-adds and
reductions instead of GEMMs with a degenerate dimension, which run at a few percent of peak.

The bound's objective is a cheap function of the (P, 2B) scores; its gradient with respect to
the scores comes from autograd on those small tensors (InfoNCE's (P, B, B) score matrix gets
the written-out dI/dS = (I - softmax(S)) / B), then flows through the critics by hand into one
flat (P, D) gradient laid out like the parameters (:func:`objective_and_grad`). Large per-step
tensors live in a :class:`~distmi.kernels.workspace.Workspace` reused from step to step. The
result equals autograd on the whole graph up to floating-point rounding (tested to 1e-12 in
float64).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from distmi.kernels import bounds
from distmi.kernels.critics import NARROW_FAN_IN, CriticSpec, Layer, mlp_outputs, unflatten
from distmi.kernels.workspace import Workspace, buffer


def _act_backward_(name: str, grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """grad * act'(a) in place, from the activation's output ``out`` = act(a)."""
    if name == "relu":
        return torch.ops.aten.threshold_backward(grad, out, 0, grad_input=grad)
    if name == "tanh":
        return grad.mul_(1.0 - out * out)
    return grad.mul_(torch.where(out > 0, 1.0, out + 1.0))


def mlp_backward(
    layers: list[Layer],
    outs: list[torch.Tensor],
    d_out: torch.Tensor,
    activation: str,
    grads: list[Layer],
    ws: Workspace | None = None,
    tag: str = "",
) -> None:
    """Backpropagate d_out = dL/d(output) (P, M, f_out) through the MLP of ``outs``.

    Writes dL/dW and dL/db of every layer into ``grads`` (views shaped like ``layers``, e.g.
    into a flat (P, D) gradient). The gradient with respect to the MLP input is not formed.
    """
    d = d_out
    for k in range(len(layers) - 1, -1, -1):
        w = layers[k][0]
        gw, gb = grads[k]
        h_in = outs[k]
        fan_in, fan_out = w.shape[1], w.shape[2]
        if fan_out == 1:  # (P, 1, M) @ (P, M, f_in): one GEMV per pair
            gw.copy_(torch.bmm(d.transpose(1, 2), h_in).transpose(1, 2))
        else:
            gw.copy_(torch.bmm(h_in.transpose(1, 2), d))
        gb.copy_(d.sum(dim=1, keepdim=True))
        if k == 0:
            break
        nxt = buffer(ws, f"{tag}d{k}", h_in.shape, h_in)
        if fan_out == 1:
            d = torch.mul(d, w.transpose(1, 2), out=nxt)  # (P, M, 1) * (P, 1, f_in)
        elif fan_in > NARROW_FAN_IN:
            d = torch.bmm(d, w.transpose(1, 2), out=nxt)
        else:
            d = nxt.copy_(torch.einsum("pmo,pio->pmi", d, w))
        d = _act_backward_(activation, d, h_in)


def _scores_and_backward(
    spec: CriticSpec, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, mode: str,
    ws: Workspace | None,
) -> tuple[torch.Tensor, Callable[[torch.Tensor, torch.Tensor], None]]:
    """Scores of one scoring ``mode`` and a closure backpropagating dL/dscores into a flat
    (P, D) gradient.

    Modes (as in :mod:`distmi.kernels.critics`):
        ``"pairs"``: joint and product-of-marginal scores (P, 2B): t_joint | t_marg, the
            marginal partner of x_i being y_(i+1 mod B).
        ``"matrix"``: all combinations S (P, B, B) for InfoNCE.
    """
    towers = unflatten(spec, theta)
    n_pairs, b = x.shape[0], x.shape[1]
    act = spec.activation
    if spec.kind == "concat":
        dx, dy = x.shape[2], y.shape[2]
        if mode == "pairs":  # rows: (x_i, y_i) then (x_i, y_(i+1))
            z = buffer(ws, "z", (n_pairs, 2 * b, dx + dy), x)
            z[:, :b, :dx] = x
            z[:, b:, :dx] = x
            z[:, :b, dx:] = y
            z[:, b:-1, dx:] = y[:, 1:]
            z[:, -1, dx:] = y[:, 0]
        else:  # row i * B + j: (x_i, y_j)
            z = buffer(ws, "z", (n_pairs, b * b, dx + dy), x)
            z4 = z.view(n_pairs, b, b, dx + dy)
            z4[..., :dx] = x[:, :, None, :]
            z4[..., dx:] = y[:, None, :, :]
        outs = mlp_outputs(towers[0], z, act, ws, "c")
        scores = outs[-1].squeeze(2)
        if mode == "matrix":
            scores = scores.view(n_pairs, b, b)

        def backward(d_scores: torch.Tensor, grad: torch.Tensor) -> None:
            d = d_scores.reshape(n_pairs, -1, 1)
            mlp_backward(towers[0], outs, d, act, unflatten(spec, grad)[0], ws, "c")

        return scores, backward

    gx_outs = mlp_outputs(towers[0], x, act, ws, "x")
    hy_outs = mlp_outputs(towers[1], y, act, ws, "y")
    gx, hy = gx_outs[-1], hy_outs[-1]  # (P, B, E)
    if mode == "pairs":
        hy_next = torch.roll(hy, shifts=-1, dims=1)
        scores = torch.cat([(gx * hy).sum(dim=2), (gx * hy_next).sum(dim=2)], dim=1)
    else:
        scores = torch.bmm(gx, hy.transpose(1, 2), out=buffer(ws, "S", (n_pairs, b, b), gx))

    def backward(d_scores: torch.Tensor, grad: torch.Tensor) -> None:
        if mode == "pairs":
            d_joint = d_scores[:, :b, None]
            d_marg = d_scores[:, b:, None]
            d_gx = d_joint * hy + d_marg * hy_next
            d_hy = d_joint * gx + torch.roll(d_marg * gx, shifts=1, dims=1)
        else:
            d_gx = torch.bmm(d_scores, hy)
            d_hy = torch.bmm(d_scores.transpose(1, 2), gx)
        grads = unflatten(spec, grad)
        mlp_backward(towers[0], gx_outs, d_gx, act, grads[0], ws, "x")
        mlp_backward(towers[1], hy_outs, d_hy, act, grads[1], ws, "y")

    return scores, backward


def _infonce_value_and_grad(scores: torch.Tensor, ws: Workspace | None
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE I = 1/B sum_i [S_ii - log(1/B sum_j e^S_ij)] per pair (P,) and dI/dS (P, B, B).

    dI/dS_ij = (delta_ij - softmax_j(S_i.)) / B with softmax = exp(S_ij - logsumexp_j S_ij),
    written out: autograd through the (P, B, B) log-sum-exp would keep several score-sized
    temporaries per step.
    """
    b = scores.shape[1]
    with torch.no_grad():
        top = scores.amax(dim=2, keepdim=True)  # (P, B, 1), for a stable log-sum-exp
        d_scores = torch.sub(scores, top, out=buffer(ws, "dS", scores.shape, scores)).exp_()
        total = d_scores.sum(dim=2, keepdim=True)
        log_mean = (top + total.log()).squeeze(2) - math.log(b)  # log 1/B sum_j e^S_ij
        objective = (torch.diagonal(scores, dim1=1, dim2=2) - log_mean).mean(dim=1)
        d_scores.div_(total).neg_()  # -softmax
        torch.diagonal(d_scores, dim1=1, dim2=2).add_(1.0)
        d_scores.div_(b)
    return objective, d_scores


def objective_and_grad(
    spec: CriticSpec,
    bound: str,
    theta: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    log_ema: torch.Tensor,
    first: bool,
    ema_alpha: float,
    ws: Workspace | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training objective of every pair and its gradient with respect to the parameters.

    Args:
        theta: (P, D) parameters (no autograd needed); x (P, B, dx), y (P, B, dy) a batch.
        bound: ``"mine"`` (bias-corrected DV surrogate with the moving average ``log_ema``),
            ``"nwj"``, ``"smile"`` (the Jensen-Shannon objective) or ``"infonce"``.
        ws: buffers reused across calls (see :class:`~distmi.kernels.workspace.Workspace`);
            ``None`` allocates.
    Returns:
        objective (P,), gradient (P, D) (a workspace buffer when ``ws`` is given: valid until
        the next call), updated ``log_ema`` (P,).
    """
    theta = theta.detach()
    mode = "matrix" if bound == "infonce" else "pairs"
    with torch.no_grad():
        scores, backward = _scores_and_backward(spec, theta, x, y, mode, ws)
    if bound == "infonce":
        objective, d_scores = _infonce_value_and_grad(scores, ws)
    else:
        leaf = scores.detach().requires_grad_(True)  # (P, 2B): autograd on the scores only
        with torch.enable_grad():
            b = x.shape[1]
            t_joint, t_marg = leaf[:, :b], leaf[:, b:]
            if bound == "mine":
                log_ema = bounds.update_log_ema(log_ema, t_marg, ema_alpha, first)
                objective = bounds.mine_surrogate(t_joint, t_marg, log_ema)
            elif bound == "nwj":
                objective = bounds.nwj_value(t_joint, t_marg)
            else:
                objective = bounds.js_value(t_joint, t_marg)
            (d_scores,) = torch.autograd.grad(objective.sum(), leaf)
    grad = buffer(ws, "grad", tuple(theta.shape), theta)
    with torch.no_grad():
        backward(d_scores, grad)
    return objective.detach(), grad, log_ema.detach()
