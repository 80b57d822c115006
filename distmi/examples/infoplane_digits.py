"""Bundled information-plane example: the digits CNN trained for 30 epochs with capture.

:func:`train_with_capture` trains :class:`~distmi.examples.models.DigitsCNN` on scikit-learn's
8x8 digits (the 80 % training split; deterministic: seeds from ``seed``, one torch thread) and,
through a :class:`~distmi.store.training.TrainingCapture` callback, records ``input`` (the
64 pixels, X), ``act1`` (8x8x8 conv map), ``act2`` (16x4x4), ``act3`` (32 dense units) and
``out`` (10 logits) on all 1797 images at epoch 0 (the initial weights) and after every epoch,
with the ``digit`` label (Y) and the ``split`` as targets. An interrupted run resumes from the
committed epochs (training is replayed, capture skipped, so the weights match).

    distmi infoplane out/digits-train --example digits --output out/digits-plane

trains, captures and estimates the plane in one command (docs/infoplane.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from distmi.core.seeds import derive_seed
from distmi.examples.train_models import digits_data

PLANE_LAYERS = ("act1", "act2", "act3", "out")
CAPTURE_LAYERS = ("input", *PLANE_LAYERS)


def train_with_capture(output: str | Path, *, epochs: int = 30, seed: int = 0,
                       batch_size: int = 64, lr: float = 3e-3, overwrite: bool = False,
                       log: Any = None):
    """Train the digits CNN for ``epochs`` epochs, capturing the plane layers each epoch.

    Returns:
        the :class:`~distmi.store.training.TrainingDataset` at ``output``.
    """
    import torch

    from distmi.examples.models import DigitsCNN
    from distmi.store.capture import CaptureSource
    from distmi.store.training import TrainingCapture, open_training

    data = digits_data(seed)
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    train = torch.from_numpy(~data.is_test)
    targets = {"digit": data.y, "split": np.where(data.is_test, "test", "train")}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(derive_seed(seed, "digits", "init"))
        model = DigitsCNN()
        cap = TrainingCapture(output, CaptureSource(data.x, targets), list(CAPTURE_LAYERS),
                              batch_size=512, model_id=f"digits-cnn-seed{seed}",
                              overwrite=overwrite)
        gen = torch.Generator().manual_seed(derive_seed(seed, "batches"))
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        loss_fn = torch.nn.CrossEntropyLoss()
        xt, yt = x[train], y[train]
        for epoch in range(epochs + 1):
            if epoch > 0:  # epoch 0 is the initial network
                model.train()
                order = torch.randperm(len(xt), generator=gen)
                for s in range(0, len(xt), batch_size):
                    idx = order[s : s + batch_size]
                    opt.zero_grad()
                    loss_fn(model(xt[idx]), yt[idx]).backward()
                    opt.step()
                model.eval()
            if cap.wants(epoch) and not cap.done(epoch):
                with torch.inference_mode():
                    pred = model(x).argmax(1)
                info = {"train_accuracy": float((pred[train] == y[train]).float().mean()),
                        "test_accuracy": float((pred[~train] == y[~train]).float().mean())}
                cap(model, epoch, **info)
                if log is not None:
                    log(f"epoch {epoch}: train accuracy {info['train_accuracy']:.3f}, "
                        f"test accuracy {info['test_accuracy']:.3f}")
    finally:
        torch.set_num_threads(before)
    return open_training(output)
