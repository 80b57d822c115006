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
