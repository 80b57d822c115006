"""Synthetic activations with planted information for the audit tests.

Layers ``early`` (8 units) and ``late`` (6 units) of a fake model carry a 3-class ``label``
and a continuous ``score`` through a few units; ``drift_layer`` makes one layer lose what it
carried (the rest unchanged), like a production model whose layer was retrained.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from distmi.store import write_dataset

N = 400
KINDS = {"label": "categorical", "score": "continuous"}


def activations(seed: int, drift_layer: str | None = None):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, size=N)
    score = rng.normal(size=N)
    early = rng.normal(size=(N, 8))
    early[:, 0] += 1.5 * label
    early[:, 1] += 1.2 * score
    early[:, 2] += 0.8 * label
    late = rng.normal(size=(N, 6))
    late[:, 0] += 1.4 * label
    late[:, 1] += 1.0 * score
    late[:, 2] += 1.0 * label - 0.5 * score
    late[:, 3] += 0.9 * label
    if drift_layer == "late":
        late[:, 0] = rng.normal(size=N) + 0.3 * label     # lost most of the label
        late[:, 1] = rng.normal(size=N)                   # lost the score
        late[:, 3] = rng.normal(size=N) + 2.0 * label     # learned more of the label
        late[:, 4] += 1.5 * score                          # picked up the score
    elif drift_layer == "early":
        early[:, 0] = rng.normal(size=N)
        early[:, 1] = rng.normal(size=N)
        early[:, 2] = rng.normal(size=N) + 2.0 * label
    return {"early": early.astype(np.float32), "late": late.astype(np.float32)}, {
        "label": label, "score": score}


def capture(path: Path, seed: int, drift_layer: str | None = None, model_id: str = "fake-model"):
    layers, targets = activations(seed, drift_layer)
    return write_dataset(path, layers, targets, KINDS, model_id=model_id, block_units=4,
                         overwrite=True)


def job_doc(dataset: Path, output: Path, **over) -> dict:
    doc = {
        "name": "fake-audit",
        "dataset": {"path": str(dataset)},
        "layers": ["early", "late"],
        "targets": ["label", "score"],
        "estimator": {"method": "gmm", "params": {"max_components": 2, "n_inits": 1}},
        "n_bootstrap": 20,
        "null_permutations": 1,
        "seed": 3,
        "output": str(output),
        "scaling": {"executor": "local", "batch_size": 16},
        "audit": {"min_effect": 0.1, "fdr": 0.05, "max_drift_fraction": 0.1},
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return doc


def write_job(path: Path, dataset: Path, output: Path, **over) -> Path:
    path.write_text(yaml.safe_dump(job_doc(dataset, output, **over), sort_keys=False))
    return path
