"""Activation store: capture layers of PyTorch models into Parquet datasets and read them back.

Reading and importing need only pyarrow and numpy; :func:`capture` and :func:`list_layers`
import torch when called.

    from distmi.store import capture, open_dataset, plan_shards
    ds = capture(model, x, ["fc1", "fc2"], "out/acts", targets={"label": y})
    ds = open_dataset("out/acts")
    acts = ds.read_layer("fc1", units=slice(0, 64))          # (n_samples, 64)
    shards = plan_shards(ds, "fc1", units_per_shard=128)     # work units for the engine
    ds = open_dataset("s3://bucket/acts")                     # any pyarrow filesystem URI

Every part file carries its identity, checked on first read (:mod:`distmi.store.identity`).
"""

from __future__ import annotations

from distmi.core.lazy import lazy_getattr
from distmi.store.importing import write_dataset
from distmi.store.manifest import LayerMeta
from distmi.store.reader import ActivationDataset, open_dataset
from distmi.store.shards import Shard, plan_shards

_LAZY = {
    "capture": "distmi.store.capture:capture",
    "CaptureSource": "distmi.store.capture:CaptureSource",
    "list_layers": "distmi.store.modules:list_layers",
    "LayerListing": "distmi.store.modules:LayerListing",
    "POOLINGS": "distmi.store.modules:POOLINGS",
    "upgrade_dataset": "distmi.store.upgrade:upgrade_dataset",
}

__all__ = [
    "POOLINGS",
    "ActivationDataset",
    "CaptureSource",
    "LayerListing",
    "LayerMeta",
    "Shard",
    "capture",
    "list_layers",
    "open_dataset",
    "plan_shards",
    "upgrade_dataset",
    "write_dataset",
]


__getattr__ = lazy_getattr("distmi.store", _LAZY, globals())
