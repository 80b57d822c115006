"""Grouped critic networks: P independent small MLP critics run as one batched program.

A variational MI bound needs a critic T(x, y) (a scalar score). distmi trains one critic per
(x variable, y variable) pair and trains hundreds of them at once, so every weight here carries
a leading *pair* dimension P and layer l of all P critics is one batched matrix product

    h_{l+1}[p] = act(h_l[p] @ W_l[p] + b_l[p])        (torch.baddbmm over p)

All parameters of pair p live in row p of one flat (P, D) tensor; the weight matrices are
views into it. One flat row per pair makes the optimiser (:mod:`distmi.kernels.grouped_training`)
a handful of element-wise ops, makes the finite-gradient check one reduction, and makes
dropping finished pairs from the working set one ``index_select``.

Two critic families (Poole et al. 2019, "On variational bounds of mutual information",
arXiv:1905.06922, Sec. 2):

* ``concat``: T(x, y) = MLP([x, y]) with layers (dx + dy) -> hidden... -> 1. Scoring all
  B x B (x_i, y_j) combinations costs B^2 network evaluations.
* ``separable``: T(x, y) = g(x)^T h(y) with two towers dx -> hidden... -> E and
  dy -> hidden... -> E. All B x B scores cost 2B tower evaluations plus one (B, E) x (E, B)
  product, which is why InfoNCE uses it by default.

Initialisation follows ``torch.nn.Linear``: every weight and bias of a layer with fan-in f is
drawn from U(-1/sqrt(f), 1/sqrt(f)). :func:`init_flat` draws ONE pair's parameters from a
seeded CPU float64 generator; callers broadcast that row to all P pairs, so a pair's start
does not depend on its position in the group or on the device.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from distmi.kernels.workspace import Workspace

CRITIC_KINDS = ("concat", "separable")
ACTIVATIONS = ("relu", "elu", "tanh")

Layer = tuple[torch.Tensor, torch.Tensor]  # W (P, fan_in, fan_out), b (P, 1, fan_out)


@dataclass(frozen=True)
class CriticSpec:
    """Architecture shared by all P critics of a group.

    Attributes:
        kind: ``"concat"`` or ``"separable"``.
        dx, dy: input widths of the x and y variables.
        hidden: widths of the hidden layers of the MLP (of each tower when separable).
        embed_dim: output width E of the two towers of a separable critic.
        activation: ``"relu"``, ``"elu"`` or ``"tanh"`` after every hidden layer.
    """

    kind: str
    dx: int
    dy: int
    hidden: tuple[int, ...] = (64, 64)
    embed_dim: int = 32
    activation: str = "relu"

    def towers(self) -> list[list[tuple[int, int]]]:
        """(fan_in, fan_out) of every layer, per tower (one tower for concat, two for separable)."""
        if self.kind == "concat":
            return [_chain(self.dx + self.dy, self.hidden, 1)]
        return [
            _chain(self.dx, self.hidden, self.embed_dim),
            _chain(self.dy, self.hidden, self.embed_dim),
        ]

    @property
    def n_params(self) -> int:
        """D, the length of one pair's flat parameter row."""
        return sum(i * o + o for tower in self.towers() for i, o in tower)


def _chain(fan_in: int, hidden: tuple[int, ...], fan_out: int) -> list[tuple[int, int]]:
    widths = [fan_in, *hidden, fan_out]
    return list(itertools.pairwise(widths))


def init_flat(spec: CriticSpec, seed: int) -> torch.Tensor:
    """One pair's initial parameters, shape (D,), float64 on CPU.

    Drawn in a fixed order (tower, layer, weight then bias) from ``torch.Generator(seed)``, so
    the same seed gives the same critic on every device, dtype and group size.
    """
    gen = torch.Generator().manual_seed(int(seed))
    parts = []
    for tower in spec.towers():
        for fan_in, fan_out in tower:
            bound = 1.0 / math.sqrt(fan_in)
            for size in (fan_in * fan_out, fan_out):
                u = torch.rand(size, generator=gen, dtype=torch.float64)
                parts.append((2.0 * u - 1.0) * bound)
    return torch.cat(parts)


def unflatten(spec: CriticSpec, flat: torch.Tensor) -> list[list[Layer]]:
    """Views of the (P, D) ``flat`` parameters as per-tower lists of (W, b) layers."""
    n_pairs = flat.shape[0]
    towers: list[list[Layer]] = []
    offset = 0
    for tower in spec.towers():
        layers = []
        for fan_in, fan_out in tower:
            w = flat[:, offset : offset + fan_in * fan_out].view(n_pairs, fan_in, fan_out)
            offset += fan_in * fan_out
            b = flat[:, offset : offset + fan_out].view(n_pairs, 1, fan_out)
            offset += fan_out
            layers.append((w, b))
        towers.append(layers)
    return towers


def activation_fn(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """In-place activation: the pre-activation (a fresh baddbmm output) is not needed by
    autograd, so overwriting it saves one (P, M, width) allocation per layer."""
    if name == "relu":
        return torch.relu_
    if name == "tanh":
        return torch.tanh_
    return lambda h: torch.nn.functional.elu(h, inplace=True)


NARROW_FAN_IN = 4  # layers with at most this fan-in are computed as broadcast multiply-adds


def grouped_linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
                   out: torch.Tensor | None = None,
                   scratch: torch.Tensor | None = None) -> torch.Tensor:
    """b + h @ w for h (P, M, fan_in), w (P, fan_in, fan_out), b (P, 1, fan_out).

    A batched GEMM with a degenerate dimension runs at a few percent of the processor's speed,
    so a layer of fan-in <= 4 (the first layer of a scalar pair) is computed as fan_in
    broadcast multiply-adds b + sum_k h[..., k] w[k, :], and a layer of fan-out 1 (the score
    layer) as a product and a row sum; both equal the GEMM up to rounding order.

    ``out`` (P, M, fan_out) and, for fan-out 1, ``scratch`` (P, M, fan_in) are optional
    preallocated buffers (no autograd then); without them the result is autograd-traceable.
    """
    fan_in, fan_out = w.shape[1], w.shape[2]
    if fan_out == 1:
        prod = torch.mul(h, w.transpose(1, 2), out=scratch)
        return torch.sum(prod, dim=2, keepdim=True, out=out).add_(b)
    if fan_in > NARROW_FAN_IN:
        return torch.baddbmm(b, h, w, out=out)
    out = torch.mul(h[..., 0:1], w[:, 0:1, :], out=out).add_(b)
    for k in range(1, fan_in):
        out.addcmul_(h[..., k : k + 1], w[:, k : k + 1, :])
    return out


def mlp_outputs(layers: list[Layer], h: torch.Tensor, activation: str,
                ws: Workspace | None = None, tag: str = "") -> list[torch.Tensor]:
    """Grouped MLP on h (P, M, fan_in): [h_0 = h, h_1, ..., h_L], every layer's input followed
    by the network output (P, M, fan_out) (the written-out backward pass needs all of them).

    With a workspace the outputs live in its buffers ``{tag}a{k}`` (valid until the next call
    with the same tag; no autograd); without one they are fresh and autograd-traceable.
    """
    act = activation_fn(activation)
    outs = [h]
    last = len(layers) - 1
    n_pairs, m = h.shape[0], h.shape[1]
    for k, (w, b) in enumerate(layers):
        fan_in, fan_out = w.shape[1], w.shape[2]
        out = scratch = None
        if ws is not None:
            out = ws.get(f"{tag}a{k}", (n_pairs, m, fan_out), h)
            if fan_out == 1:
                scratch = ws.get(f"{tag}s{k}", (n_pairs, m, fan_in), h)
        a = grouped_linear(outs[-1], w, b, out, scratch)
        outs.append(act(a) if k < last else a)
    return outs


def _mlp(layers: list[Layer], h: torch.Tensor, activation: str) -> torch.Tensor:
    """Apply a grouped MLP to h of shape (P, M, fan_in); returns (P, M, fan_out)."""
    return mlp_outputs(layers, h, activation)[-1]


def paired_scores(spec: CriticSpec, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                  ws: Workspace | None = None) -> torch.Tensor:
    """T_p(x_pm, y_pm) for row-aligned inputs.

    Args:
        flat: (P, D) parameters.
        x: (P, M, dx); y: (P, M, dy).
        ws: optional workspace for the activations (the held-out evaluation scores many
            same-sized chunks); no autograd then.

    Returns:
        (P, M) scores (a fresh tensor).
    """
    towers = unflatten(spec, flat)
    act = spec.activation
    if spec.kind == "concat":
        z_shape = (x.shape[0], x.shape[1], x.shape[2] + y.shape[2])
        z = torch.cat([x, y], dim=2, out=None if ws is None else ws.get("ez", z_shape, x))
        scores = mlp_outputs(towers[0], z, act, ws, "e")[-1].squeeze(2)
        return scores if ws is None else scores.clone()
    gx = mlp_outputs(towers[0], x, act, ws, "ex")[-1]  # (P, M, E)
    hy = mlp_outputs(towers[1], y, act, ws, "ey")[-1]  # (P, M, E)
    return (gx * hy).sum(dim=2)


def joint_and_marginal_scores(
    spec: CriticSpec, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores on joint samples (x_i, y_i) and on product-of-marginal samples (x_i, y_{i+1}).

    The rows of a batch are independent draws, so pairing x_i with y_{i+1 mod M} (a cyclic shift,
    never a fixed point) samples the product of the marginals p(x)p(y) with M pairs.

    Args:
        x: (P, M, dx); y: (P, M, dy).

    Returns:
        t_joint (P, M), t_marginal (P, M).
    """
    m = x.shape[1]
    if spec.kind == "concat":
        y_shift = torch.roll(y, shifts=-1, dims=1)
        t = paired_scores(spec, flat, torch.cat([x, x], dim=1), torch.cat([y, y_shift], dim=1))
        return t[:, :m], t[:, m:]
    towers = unflatten(spec, flat)
    act = spec.activation
    gx = _mlp(towers[0], x, act)  # (P, M, E)
    hy = _mlp(towers[1], y, act)  # (P, M, E)
    return (gx * hy).sum(dim=2), (gx * torch.roll(hy, shifts=-1, dims=1)).sum(dim=2)


def score_matrix(spec: CriticSpec, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
    """All combinations S[p, i, j] = T_p(x_pi, y_pj).

    Args:
        x: (P, B, dx); y: (P, B, dy).

    Returns:
        (P, B, B) scores; the diagonal holds the joint samples. A concat critic evaluates its
        MLP on all B^2 combinations (memory P * B^2 * max(hidden)); a separable one on 2B rows.
    """
    n_pairs, b = x.shape[0], x.shape[1]
    towers = unflatten(spec, flat)
    act = spec.activation
    if spec.kind == "concat":
        xx = x[:, :, None, :].expand(n_pairs, b, b, x.shape[2])
        yy = y[:, None, :, :].expand(n_pairs, b, b, y.shape[2])
        z = torch.cat([xx, yy], dim=3).reshape(n_pairs, b * b, -1)
        return _mlp(towers[0], z, act).view(n_pairs, b, b)
    gx = _mlp(towers[0], x, act)  # (P, B, E)
    hy = _mlp(towers[1], y, act)  # (P, B, E)
    return torch.bmm(gx, hy.transpose(1, 2))
