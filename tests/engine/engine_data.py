"""Data and job helpers shared by the engine tests (imported by conftest and the tests)."""

from __future__ import annotations

import numpy as np

from distmi.jobs.spec import parse_spec

N = 160


def make_activations(seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Layers ``a`` (6 units, unit 4 constant) and ``b`` (4 units) driven by a 3-class label."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, size=N)
    z = rng.normal(size=N)
    a = rng.normal(size=(N, 6))
    a[:, 0] += 1.5 * label            # strongly label-dependent
    a[:, 1] += 0.9 * z                # depends on the continuous target
    a[:, 4] = 0.25                    # a dead unit
    b = rng.normal(size=(N, 4))
    b[:, 0] += a[:, 0]                # depends on a[:, 0]
    layers = {"a": a.astype(np.float32), "b": b.astype(np.float32)}
    return layers, {"label": label, "score": z}


# Estimators with the settings users run (not the one-component GMM of tiny_spec): GMM with
# K chosen by cross-validation over several inits, KSG, and a neural bound.
REAL_ESTIMATORS = {
    "gmm-select": {"method": "gmm", "params": {"max_components": 4, "n_inits": 3}},
    "ksg": {"method": "ksg", "params": {"k": 4}},
    "smile": {"method": "smile", "params": {"hidden": [8, 8], "batch_size": 32,
                                            "max_steps": 200, "eval_every": 20,
                                            "patience": 5, "learning_rate": 0.01}},
}


def tiny_spec(dataset, output, **over):
    """A fast job on the tiny dataset (GMM with one component, 3 bootstrap replicates)."""
    doc = {
        "name": "tiny",
        "dataset": {"path": str(dataset)},
        "layers": ["a", "b"],
        "targets": ["label", "score"],
        "estimator": {"method": "gmm", "params": {"n_components": 1, "n_inits": 1}},
        "n_bootstrap": 3,
        "null_permutations": 1,
        "seed": 7,
        "output": str(output),
        "scaling": {"executor": "local", "batch_size": 3, "units_per_shard": 4,
                    "cpus_per_worker": 0.5},
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return parse_spec(doc)


N_PLANTED = 600


def make_planted(seed: int = 3) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Layers ``h`` (40 units) and ``g`` (8 units) with planted dependence, n=600:

    h0 = 0.5 score + noise (linear), h1 = score^2 + noise (non-monotone), h2 shifted by the
    label (categorical), h3 constant (dead), h5 = relu(noise) (ties at 0), other units noise;
    g0 = h0 + noise, g1 = |h4| + noise (non-monotone in h4).
    """
    rng = np.random.default_rng(seed)
    n = N_PLANTED
    label = rng.integers(0, 3, size=n)
    score = rng.normal(size=n)
    h = rng.normal(size=(n, 40))
    h[:, 0] = 0.5 * score + h[:, 0]
    h[:, 1] = score**2 + 0.7 * h[:, 1]
    h[:, 2] = h[:, 2] + 0.8 * (label == 1)
    h[:, 3] = 1.0
    h[:, 5] = np.maximum(h[:, 5], 0.0)
    g = rng.normal(size=(n, 8))
    g[:, 0] = h[:, 0] + 0.5 * g[:, 0]
    g[:, 1] = np.abs(h[:, 4]) + 0.3 * g[:, 1]
    return ({"h": h.astype(np.float32), "g": g.astype(np.float32)},
            {"label": label, "score": score})


def planted_spec(dataset, output, **over):
    """A two-stage job on the planted dataset (KSG refine, 3 half-sample replicates)."""
    doc = {
        "name": "planted",
        "dataset": {"path": str(dataset)},
        "layers": ["h"],
        "targets": ["label", "score"],
        "estimator": {"method": "ksg", "params": {"k": 3}},
        "n_bootstrap": 3,
        "null_permutations": 1,
        "seed": 11,
        "output": str(output),
        "screen": {"n_permutations": "auto", "fdr": 0.05},
        "scaling": {"executor": "local", "batch_size": 8, "units_per_shard": 16,
                    "cpus_per_worker": 0.5},
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return parse_spec(doc)
