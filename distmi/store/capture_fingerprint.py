"""What identifies a capture: the model's weights, the call's settings, the data and targets.

A capture's *fingerprint* is the sha256 of a JSON document of everything that changes the
stored bytes (:func:`capture_settings`): model class and weights hash, layers, pooling, stored
dtype, batch size, storage layout, the number of input rows, the sha256 of the first batch of
inputs and of the targets. It becomes the dataset id written into every part file, decides
whether an unfinished capture may be resumed by a call, and whether a complete dataset is
reused. The single-process :func:`~distmi.store.capture.capture` and the sharded capture of the
engine compute it with the same function, so the same inputs give the same dataset id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd


def weights_sha256(model: Any) -> str:
    """sha256 over the model's state_dict (names, dtypes, shapes and bytes, in order)."""
    import torch

    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def model_class_name(model: Any) -> str:
    """``module.QualName`` of the model's class (recorded in the manifest)."""
    return f"{type(model).__module__}.{type(model).__qualname__}"


def fingerprint(settings: Mapping[str, Any]) -> str:
    """sha256 of the settings as sorted JSON (the dataset id of a capture)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def targets_digest(targets: Any, sample_ids: Any) -> str | None:
    """sha256 of the targets given to a capture (values and column names) and the sample ids."""
    if targets is None and sample_ids is None:
        return None
    h = hashlib.sha256()
    if targets is not None:
        frame = targets if isinstance(targets, pd.DataFrame) else pd.DataFrame(
            {k: np.asarray(v.detach().cpu() if hasattr(v, "detach") else v) for k, v in
             (targets.items() if isinstance(targets, Mapping) else targets.to_pandas().items())}
        )
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
        h.update(",".join(map(str, frame.columns)).encode())
    if sample_ids is not None:
        h.update(np.asarray(sample_ids).astype(str).tobytes())
    return h.hexdigest()


def capture_settings(
    *,
    model_class: str,
    weights: str,
    layers: Sequence[str],
    pooling: Mapping[str, str],
    dtype: str,
    batch_size: int,
    rows_per_part: int,
    row_group_rows: int | None,
    block_units: int,
    compression: str,
    on_nonfinite: str,
    n_inputs: int | None,
    first_batch_sha256: str,
    targets_sha256: str | None,
    target_keys: Sequence[str] = (),
    target_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The settings document whose :func:`fingerprint` identifies a capture."""
    return {
        "model_class": model_class,
        "weights_sha256": weights,
        "layers": list(layers),
        "pooling": dict(pooling),
        "dtype": dtype,
        "batch_size": batch_size,
        "rows_per_part": rows_per_part,
        "row_group_rows": row_group_rows,
        "block_units": block_units,
        "compression": compression,
        "on_nonfinite": on_nonfinite,
        "n_samples_hint": n_inputs,
        "first_batch_sha256": first_batch_sha256,
        "targets_sha256": targets_sha256,
        "target_keys": list(target_keys),
        "target_names": list(target_names) if target_names is not None else None,
    }
