"""Which estimator should NIF use for its links? Accuracy on held-out 1-D pairs with known MI.

Every family below is a scalar pair (x, y) whose mutual information is known in closed form or
by numerical quadrature; the families cover what the links of a trained MLP look like
(Gaussian-like, bimodal, heavy-tailed, skewed, bounded, rectified by a ReLU, a class
indicator). Each estimator sees ``--datasets`` independent draws of every family at ``--n``
samples, all solved in one batched ``estimate_pairs`` call per estimator, and the program prints
the mean estimate per family, the mean absolute error over families and the time taken.

    .venv/bin/python benchmarks/nif_link_accuracy.py --n 5000 --datasets 4
    .venv/bin/python benchmarks/nif_link_accuracy.py --n 150 --datasets 16   # iris-sized
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np
from scipy import integrate, special, stats

Family = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]


def _gauss(rho: float) -> tuple[Family, float]:
    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=n)
        return x, rho * x + math.sqrt(1 - rho**2) * rng.normal(size=n)

    return draw, -0.5 * math.log(1 - rho**2)


def _bimodal(mu: float = 2.0) -> tuple[Family, float]:
    """x = mu s + e1, y = mu s + e2 with a fair sign s and unit normal noise."""

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        s = rng.choice([-1.0, 1.0], size=n)
        return mu * s + rng.normal(size=n), mu * s + rng.normal(size=n)

    def marginal(t: np.ndarray) -> np.ndarray:
        return 0.5 * (stats.norm.pdf(t, mu) + stats.norm.pdf(t, -mu))

    grid = np.linspace(-mu - 9, mu + 9, 1801)
    gx, gy = np.meshgrid(grid, grid, indexing="ij")
    joint = 0.5 * (stats.norm.pdf(gx, mu) * stats.norm.pdf(gy, mu)
                   + stats.norm.pdf(gx, -mu) * stats.norm.pdf(gy, -mu))
    ratio = np.log(np.maximum(joint, 1e-300)) - np.log(marginal(gx) * marginal(gy))
    h = grid[1] - grid[0]
    return draw, float(np.sum(joint * ratio) * h * h)


def _student(nu: float = 3.0, rho: float = 0.5) -> tuple[Family, float]:
    """Bivariate Student-t; I = Gaussian part + a term of nu only (closed form)."""

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        z1, z2 = rng.normal(size=n), rng.normal(size=n)
        w = np.sqrt(nu / rng.chisquare(nu, size=n))
        return w * z1, w * (rho * z1 + math.sqrt(1 - rho**2) * z2)

    a, b, c = nu / 2, (nu + 1) / 2, (nu + 2) / 2
    extra = (special.gammaln(a) + special.gammaln(c) - 2 * special.gammaln(b)
             + 2 * b * special.digamma(b) - a * special.digamma(a) - c * special.digamma(c))
    return draw, float(-0.5 * math.log(1 - rho**2) + extra)


def _gamma_exp(alpha: float = 1.0) -> tuple[Family, float]:
    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.gamma(alpha, 1.0, size=n)
        return np.log(x), np.log(rng.exponential(1.0 / x))

    return draw, float(special.digamma(alpha + 1) - math.log(alpha))


def _uniform_noise(a: float = 0.5) -> tuple[Family, float]:
    """x ~ U(0, 1), y = x + U(0, a); I = a / 2 - ln a for a <= 1."""

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(size=n)
        return x, x + a * rng.uniform(size=n)

    return draw, a / 2 - math.log(a)


def _rectified(sigma: float = 0.5) -> tuple[Family, float]:
    """h = relu(z), y = z + sigma e: a ReLU unit (half its mass at 0) and a noisy read-out.

    I(h; y) = H(y) - H(y | z > 0) / 2 - log(2 pi e sigma^2) / 4 (the zero half carries only
    the sign of z; the positive half carries z itself), with H(y | z > 0) by quadrature.
    """

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        z = rng.normal(size=n)
        return np.maximum(z, 0.0), z + sigma * rng.normal(size=n)

    var = 1.0 + sigma**2
    s = math.sqrt(sigma**2 / var)

    def p_pos(t: float) -> float:
        return 2.0 * stats.norm.pdf(t, 0, math.sqrt(var)) * stats.norm.cdf(t / var / s)

    h_pos = integrate.quad(lambda t: -p_pos(t) * math.log(max(p_pos(t), 1e-300)), -15, 15,
                           limit=400)[0]
    h_y = 0.5 * math.log(2 * math.pi * math.e * var)
    return draw, h_y - 0.5 * h_pos - 0.25 * math.log(2 * math.pi * math.e * sigma**2)


def _independent() -> tuple[Family, float]:
    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        return np.maximum(rng.normal(size=n), 0.0), rng.normal(size=n)

    return draw, 0.0


def _class_indicator(p1: float = 0.3, shift: float = 2.0) -> tuple[Family, float]:
    """A unit x | c ~ N(shift c, 1) against the indicator c ~ Bernoulli(p1) (discrete y)."""

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        c = (rng.uniform(size=n) < p1).astype(np.int64)
        return shift * c + rng.normal(size=n), c

    prior = (1 - p1, p1)

    def term(c: int) -> float:
        def f(t: float) -> float:
            pc = stats.norm.pdf(t, shift * c)
            mix = prior[0] * stats.norm.pdf(t, 0) + prior[1] * stats.norm.pdf(t, shift)
            return pc * (math.log(pc) - math.log(mix))

        return integrate.quad(f, shift * c - 12, shift * c + 12, limit=200)[0]

    return draw, float(prior[0] * term(0) + prior[1] * term(1))


CONTINUOUS = {
    "gauss rho=0.3": _gauss(0.3),
    "gauss rho=0.6": _gauss(0.6),
    "gauss rho=0.9": _gauss(0.9),
    "bimodal mixture": _bimodal(),
    "student-t nu=3": _student(),
    "gamma-exp": _gamma_exp(),
    "uniform + noise": _uniform_noise(),
    "rectified (ReLU)": _rectified(),
    "independent (ReLU)": _independent(),
}
DISCRETE = {"class indicator": _class_indicator()}


def draw_families(n: int, datasets: int, seed: int) -> tuple[dict, dict]:
    """(continuous, discrete) draws: name -> (X (n, D), Y (n, D) or labels list, truth)."""
    rng = np.random.default_rng(seed)
    cont = {}
    for name, (draw, truth) in CONTINUOUS.items():
        xs, ys = zip(*(draw(rng, n) for _ in range(datasets)), strict=True)
        cont[name] = (np.stack(xs, 1), np.stack(ys, 1), truth)
    disc = {}
    for name, (draw, truth) in DISCRETE.items():
        disc[name] = ([draw(rng, n) for _ in range(datasets)], truth)
    return cont, disc


def run_estimator(method: str, params: dict, cont: dict, disc: dict, seed: int
                  ) -> dict[str, np.ndarray]:
    """Estimates per family, shape (datasets,) (all continuous pairs in one batched call)."""
    from distmi.estimators.registry import get_method

    spec = get_method(method)
    names = list(cont)
    X = np.concatenate([cont[k][0] for k in names], axis=1)
    Y = np.concatenate([cont[k][1] for k in names], axis=1)
    pairs = np.stack([np.arange(X.shape[1])] * 2, axis=1)
    res = spec.estimate_pairs(X, Y, pairs, discrete_y=False, n_bootstrap=0, random_state=seed,
                              **params)
    values = np.array([r.value for r in res])
    d = cont[names[0]][0].shape[1]
    out = {k: values[i * d:(i + 1) * d] for i, k in enumerate(names)}
    for k, (draws, _) in disc.items():
        vals = []
        for x, c in draws:
            r = spec.estimate_pairs(x[:, None], c, np.array([[0, 0]]), discrete_y=True,
                                    n_bootstrap=0, random_state=seed, **params)[0]
            vals.append(r.value)
        out[k] = np.array(vals)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--datasets", type=int, default=4, help="independent draws per family")
    ap.add_argument("--methods", nargs="+", default=["ksg", "gmm", "mine"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a shared machine more threads only spin)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    cont, disc = draw_families(args.n, args.datasets, args.seed)
    truths = {k: v[2] for k, v in cont.items()} | {k: v[1] for k, v in disc.items()}
    params = {"gmm": {"max_components": 6}, "mine": {}, "ksg": {}}
    results, seconds = {}, {}
    for m in args.methods:
        p = dict(params.get(m, {}))
        if m in ("mine", "nwj", "smile", "infonce"):
            p["batch_size"] = min(128, max(8, args.n // 4))
        t0 = time.perf_counter()
        results[m] = run_estimator(m, p, cont, disc, args.seed)
        seconds[m] = time.perf_counter() - t0
        print(f"{m}: done in {seconds[m]:.1f} s", flush=True)
    header = f"{'family':<22}{'truth':>8}" + "".join(f"{m:>10}" for m in args.methods)
    print(f"n={args.n}, {args.datasets} datasets per family, mean estimate (nats)")
    print(header)
    for k, t in truths.items():
        print(f"{k:<22}{t:>8.3f}" + "".join(f"{results[m][k].mean():>10.3f}"
                                            for m in args.methods))
    print("-" * len(header))
    mae = {m: float(np.mean([np.abs(results[m][k] - t).mean() for k, t in truths.items()]))
           for m in args.methods}
    bias = {m: float(np.mean([abs(results[m][k].mean() - t) for k, t in truths.items()]))
            for m in args.methods}
    sd = {m: float(np.mean([results[m][k].std(ddof=1) for k in truths])) for m in args.methods}
    worst = {m: max(truths, key=lambda k, m=m: abs(results[m][k].mean() - truths[k]))
             for m in args.methods}
    print(f"{'MAE (per estimate)':<30}" + "".join(f"{mae[m]:>10.3f}" for m in args.methods))
    print(f"{'mean |bias| (family means)':<30}" + "".join(f"{bias[m]:>10.3f}"
                                                          for m in args.methods))
    print(f"{'sd within family':<30}" + "".join(f"{sd[m]:>10.3f}" for m in args.methods))
    print(f"{'seconds':<30}" + "".join(f"{seconds[m]:>10.1f}" for m in args.methods))
    for m in args.methods:
        k = worst[m]
        print(f"worst family for {m}: {k} ({results[m][k].mean():.3f} vs {truths[k]:.3f})")
    print(f"most accurate: {min(mae, key=mae.get)}")


if __name__ == "__main__":
    main()
