"""Fashion-MNIST from the Debian IDX files (read with NumPy) and a small MLP."""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn


def _idx(path: Path, header: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        return np.frombuffer(fh.read(), np.uint8, offset=header)


@lru_cache(maxsize=2)
def load_split(data_dir: str, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    prefix = "train" if train else "t10k"
    root = Path(data_dir)
    candidates = [root / f"{prefix}-images-idx3-ubyte.gz", root / f"{prefix}-images-idx3-ubyte"]
    images = next((p for p in candidates if p.exists()), None)
    if images is None:
        raise FileNotFoundError(
            f"no Fashion-MNIST in {root}: `apt-get install dataset-fashion-mnist` or set data-dir"
        )
    labels = images.with_name(images.name.replace("images-idx3", "labels-idx1"))
    x = _idx(images, 16).reshape(-1, 784).astype(np.float32) / 255.0
    y = _idx(labels, 8).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


def load_partition(
    data_dir: str, partition_id: int, num_partitions: int, per_node: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """An IID slice of the training set for this node, and a slice of the test set."""
    x, y = load_split(data_dir, True)
    order = np.random.default_rng(0).permutation(len(x))
    mine = order[partition_id::num_partitions][:per_node]
    xt, yt = load_split(data_dir, False)
    test = np.arange(partition_id, len(xt), num_partitions)[: per_node // 4]
    return x[mine], y[mine], xt[test], yt[test]


def build_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def train(model: nn.Module, x, y, epochs: int, lr: float, batch_size: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    total = 0.0
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for start in range(0, len(x), batch_size):
            idx = perm[start : start + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
    return total / (epochs * len(x))


@torch.no_grad()
def evaluate(model: nn.Module, x, y) -> tuple[float, float]:
    model.eval()
    out = model(x)
    return float(nn.functional.cross_entropy(out, y)), float((out.argmax(1) == y).float().mean())
