"""Eq. 3 of NIF: one critic shared by the relevance and redundancy terms of a link.

For the link X_i -> Q_k the seed trains a single statistics network T_theta on both terms,

    A(theta)   = E_{P(X_i, Q_k)}[T] - log E_{P(X_i) P(Q_k)}[e^T]
    B_j(theta) = E_{P(X_i, X_j)}[T] - log E_{P(X_i) P(X_j)}[e^T]
    NIF        = sup_theta A(theta) - beta_i sum_{j earlier} B_j(theta)            (eq. 3)

(Donsker-Varadhan terms as in MINE). Because every B_j(theta) is a lower bound of
I(X_i; X_j), A(theta) - beta sum B_j(theta) >= A(theta) - beta sum I(X_i; X_j) for every
theta, so eq. 3 bounds the per-link value of eq. 2 from *above* (the seed's "weaker least upper
bound"). A critic can push B_j below 0 (scoring product samples above joint ones) while
keeping A, so the supremum is not tied to the redundancy at all: with enough capacity the
penalty vanishes. docs/nif.md compares it with eq. 2 on a network with known link MI.

Implementation: one concat critic (2 -> hidden -> hidden -> 1, ReLU) per link, all links
trained together as batched matrices (torch autograd, Adam), on a seeded half of the rows;
the value is evaluated on the other half. Links with a constant end are exactly 0. Intended for
small networks: a link's step costs (1 + number of earlier units) critic evaluations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from distmi.analyses.nif.graph import CLASSES, FlowGraph
from distmi.core.seeds import derive_rng, derive_seed


def _standardize(a: np.ndarray) -> np.ndarray:
    sd = a.std(axis=0)
    return (a - a.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _dv(scores_joint: Any, scores_marg: Any) -> Any:
    """DV terms E_P[T] - log E_Q[e^T] over the last dim; scores (..., rows)."""
    import torch

    rows = scores_joint.shape[-1]
    lme = torch.logsumexp(scores_marg, dim=-1) - np.log(rows)
    return scores_joint.mean(-1) - lme


def shared_critic_values(
    acts: dict[str, np.ndarray], labels: np.ndarray | None, graph: FlowGraph,
    links: pd.DataFrame, ranks: dict[str, np.ndarray], betas: dict[str, np.ndarray],
    seed: int, *, steps: int = 300, hidden: int = 16, batch_size: int = 32,
    learning_rate: float = 1e-3, dtype: str = "float32",
) -> np.ndarray:
    """Eq. 3 value of every link of ``links`` (same row order), shape (P,).

    Args:
        acts: node activations by layer (n, units).
        labels: class codes (n,) when the outputs are class indicators.
        graph: the flow graph.
        links: link table (src_layer, src_unit, dst_layer, dst_unit, status).
        ranks, betas: per source layer, each unit's position in the redundancy order and its
            beta_i (from eq. 2's settings).
        seed: root seed (row split, batches, critic initialisation).
        steps, hidden, batch_size, learning_rate, dtype: training settings.
    """
    import torch

    n = next(iter(acts.values())).shape[0]
    perm = derive_rng(seed, "nif", "shared-critic", "split").permutation(n)
    test_rows, train_rows = np.sort(perm[: n // 2]), np.sort(perm[n // 2:])
    tdtype = torch.float64 if dtype == "float64" else torch.float32
    columns = {name: _standardize(a.astype(np.float64)) for name, a in acts.items()}
    if labels is not None:
        onehot = np.eye(graph.layers[-1].n_units)[labels]
        columns[CLASSES] = _standardize(onehot)
    out = np.zeros(len(links))
    ok = (links["status"] == "ok").to_numpy()
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return out
    # per link: x_i, q_k and the earlier units' columns (padded, masked)
    src_layers = links["src_layer"].to_numpy()[idx]
    src_units = links["src_unit"].to_numpy(int)[idx]
    dst_layers = links["dst_layer"].to_numpy()[idx]
    dst_units = links["dst_unit"].to_numpy(int)[idx]
    earlier: list[np.ndarray] = []
    beta_i = np.zeros(idx.size)
    for p, (layer, u) in enumerate(zip(src_layers, src_units, strict=True)):
        r = ranks[layer]
        earlier.append(np.flatnonzero(r < r[u]))
        beta_i[p] = betas[layer][u]
    m_max = max(1, max(len(e) for e in earlier))
    P = idx.size
    xi = np.stack([columns[a][:, u] for a, u in zip(src_layers, src_units, strict=True)])  # (P, n)
    qk = np.stack([columns[b][:, k] for b, k in zip(dst_layers, dst_units, strict=True)])  # (P, n)
    xj = np.zeros((P, m_max, n))
    mask = np.zeros((P, m_max))
    for p, (layer, e) in enumerate(zip(src_layers, earlier, strict=True)):
        if len(e):
            xj[p, : len(e)] = columns[layer][:, e].T
            mask[p, : len(e)] = 1.0
    t = {k: torch.as_tensor(v, dtype=tdtype) for k, v in
         {"xi": xi, "qk": qk, "xj": xj, "mask": mask, "beta": beta_i}.items()}
    gen = torch.Generator().manual_seed(derive_seed(seed, "nif", "shared-critic", "init"))
    scale1, scale2 = 1.0 / np.sqrt(2.0), 1.0 / np.sqrt(hidden)
    w1 = (torch.randn(1, 2, hidden, generator=gen, dtype=tdtype) * scale1).repeat(P, 1, 1)
    w2 = (torch.randn(1, hidden, hidden, generator=gen, dtype=tdtype) * scale2).repeat(P, 1, 1)
    w3 = (torch.randn(1, hidden, 1, generator=gen, dtype=tdtype) * scale2).repeat(P, 1, 1)
    b1, b2 = torch.zeros(P, 1, hidden, dtype=tdtype), torch.zeros(P, 1, hidden, dtype=tdtype)
    params = [w.requires_grad_() for w in (w1, b1, w2, b2, w3)]
    opt = torch.optim.Adam(params, lr=learning_rate)

    def critic(u: Any, v: Any) -> Any:
        """u, v: (P, R) -> scores (P, R) of each link's critic on the pairs (u, v)."""
        h = torch.stack([u, v], dim=-1)  # (P, R, 2)
        h = torch.relu(torch.baddbmm(b1, h, w1))
        h = torch.relu(torch.baddbmm(b2, h, w2))
        return torch.bmm(h, w3).squeeze(-1)

    def objective(rows: np.ndarray, partner: np.ndarray) -> Any:
        r, s = torch.as_tensor(rows), torch.as_tensor(partner)
        x = t["xi"][:, r]
        a = _dv(critic(x, t["qk"][:, r]), critic(x, t["qk"][:, s]))
        R = len(rows)
        xr = x.repeat_interleave(m_max, dim=0)  # (P*m, R)
        xj_r = t["xj"][:, :, r].reshape(P * m_max, R)
        xj_s = t["xj"][:, :, s].reshape(P * m_max, R)
        # B terms with each link's own critic: evaluate link p's critic on its m rows
        hj = critic_rep(xr, xj_r).reshape(P, m_max, R)
        hm = critic_rep(xr, xj_s).reshape(P, m_max, R)
        b = _dv(hj, hm) * t["mask"]
        return a - t["beta"] * b.sum(1)

    def critic_rep(u: Any, v: Any) -> Any:
        """Scores of link p's critic on rows p*m .. p*m+m-1 of (u, v): (P*m, R)."""
        R = u.shape[-1]
        h = torch.stack([u, v], dim=-1).reshape(P, m_max * R, 2)
        h = torch.relu(torch.baddbmm(b1, h, w1))
        h = torch.relu(torch.baddbmm(b2, h, w2))
        return torch.bmm(h, w3).reshape(P * m_max, R)

    rng = derive_rng(seed, "nif", "shared-critic", "batches")
    bs = int(min(batch_size, len(train_rows)))
    for _ in range(steps):
        rows = rng.choice(train_rows, size=bs, replace=True)
        partner = np.roll(rows, 1)
        loss = -objective(rows, partner).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        partner = np.roll(test_rows, 1)
        value = objective(test_rows, partner).double().numpy()
    out[idx] = value
    return out
