"""The synthetic-patch task: a planted answer for the decomposition.

Images are 1 x 16 x 16. A *class patch* (pixels [0, 5) x [0, 5), top-left) holds one of four
shapes, the class. A *distractor patch* (pixels [11, 16) x [11, 16), bottom-right) holds one of the
same four shapes drawn independently of the class: it carries no information about the label,
but plenty about the input, so a representation of the input carries it too. Both shapes get a
random brightness in [0.6, 1.0] and the whole image Gaussian noise (sd 0.1).

:class:`PatchCNN` classifies them. It is trained with a second head that names the distractor
shape (``aux``, not part of ``forward``), so its 32-unit representation ``act3`` (the input of the
class head ``out``) encodes both shapes: information about the input that the decision does not
use, i.e. redundant information by construction. Its ``act2`` feature map is 8 x 8, and its quadrants map
onto the patches' footprints: a cell k of ``act2`` sees pixels [2k - 3, 2k + 4) (two 3 x 3
convolutions around a 2 x 2 pooling), so the class patch reaches rows/cols 0-3 and the
distractor rows/cols 4-7, and the other two quadrants see neither. The decision-related map should sit in the class quadrant, the
total map in both (``tests/decompose/test_decompose_synthetic_patch.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from distmi.core.seeds import derive_rng, derive_seed

N_CLASSES = 4
IMAGE = 16
SIZE = 5
CLASS_BOX = (slice(0, SIZE), slice(0, SIZE))
DISTRACTOR_BOX = (slice(IMAGE - SIZE, IMAGE), slice(IMAGE - SIZE, IMAGE))


def _shapes() -> np.ndarray:
    """Four 5x5 binary shapes: horizontal bar, vertical bar, diagonal, ring. (4, 5, 5)."""
    s = np.zeros((N_CLASSES, SIZE, SIZE), np.float32)
    s[0, 2:4, :] = 1.0
    s[1, :, 2:4] = 1.0
    s[2][np.eye(SIZE, dtype=bool)] = 1.0
    s[2][np.eye(SIZE, k=1, dtype=bool)] = 1.0
    s[3, 0, :] = s[3, -1, :] = s[3, :, 0] = s[3, :, -1] = 1.0
    return s


@dataclass(frozen=True)
class PatchData:
    x: np.ndarray  # (n, 1, 16, 16) float32
    y: np.ndarray  # (n,) int64, the class-patch shape
    distractor: np.ndarray  # (n,) int64, the distractor shape (independent of y)


def patch_data(n: int, seed: int = 0, split: str = "train") -> PatchData:
    """``n`` images of the synthetic-patch task (see module docstring)."""
    rng = derive_rng(seed, "synthetic-patch", split)
    shapes = _shapes()
    y = rng.integers(0, N_CLASSES, size=n)
    d = rng.integers(0, N_CLASSES, size=n)
    x = rng.normal(0.0, 0.1, size=(n, 1, IMAGE, IMAGE)).astype(np.float32)
    x[:, 0, CLASS_BOX[0], CLASS_BOX[1]] += shapes[y] * rng.uniform(0.6, 1.0, (n, 1, 1))
    x[:, 0, DISTRACTOR_BOX[0], DISTRACTOR_BOX[1]] += shapes[d] * rng.uniform(0.6, 1.0, (n, 1, 1))
    return PatchData(x.astype(np.float32), y.astype(np.int64), d.astype(np.int64))


class PatchCNN(nn.Module):
    """conv(1->8) - ReLU - pool - conv(8->16) - ReLU (``act2``, 16 x 8 x 8) - pool - fc 32
    (``act3``) - 4 classes (``out``); ``aux`` (32 -> 4 distractor shapes) is used in training."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.act1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.act2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.act3 = nn.ReLU()
        self.out = nn.Linear(32, N_CLASSES)
        self.aux = nn.Linear(32, N_CLASSES)

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool1(self.act1(self.conv1(x)))
        h = self.pool2(self.act2(self.conv2(h)))
        return self.act3(self.fc1(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (batch, 4)."""
        return self.out(self.representation(x))


def class_region(shape: tuple[int, int] = (8, 8)) -> np.ndarray:
    """Bool map of the class patch's quadrant at a feature-map resolution (H, W)."""
    h, w = shape
    region = np.zeros(shape, dtype=bool)
    region[: h // 2, : w // 2] = True
    return region


def distractor_region(shape: tuple[int, int] = (8, 8)) -> np.ndarray:
    """Bool map of the distractor patch's quadrant at a feature-map resolution (H, W)."""
    h, w = shape
    region = np.zeros(shape, dtype=bool)
    region[h // 2:, w // 2:] = True
    return region


def train_patch_cnn(n_train: int = 2000, epochs: int = 8, seed: int = 0
                    ) -> tuple[PatchCNN, dict[str, float]]:
    """Train :class:`PatchCNN` on the task (one CPU thread, a few seconds); (model, accuracies)."""
    data = patch_data(n_train, seed, "train")
    test = patch_data(1000, seed, "test")
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    d = torch.from_numpy(data.distractor)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, "synthetic-patch", "init"))
            model = PatchCNN()
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        order_rng = derive_rng(seed, "synthetic-patch", "batches")
        model.train()
        for _ in range(epochs):
            order = torch.from_numpy(order_rng.permutation(n_train))
            for s in range(0, n_train, 64):
                idx = order[s:s + 64]
                opt.zero_grad()
                z = model.representation(x[idx])
                loss = (nn.functional.cross_entropy(model.out(z), y[idx])
                        + nn.functional.cross_entropy(model.aux(z), d[idx]))
                loss.backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            test_z = model.representation(torch.from_numpy(test.x))
            acc = {
                "train_accuracy": float((model(x).argmax(1) == y).float().mean()),
                "test_distractor_accuracy": float((model.aux(test_z).argmax(1)
                                                   == torch.from_numpy(test.distractor))
                                                  .float().mean()),
                "test_accuracy": float((model(torch.from_numpy(test.x)).argmax(1)
                                        == torch.from_numpy(test.y)).float().mean()),
            }
    finally:
        torch.set_num_threads(before)
    return model, acc
