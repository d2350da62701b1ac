"""Fashion-MNIST from local files, split into federated partitions deterministically.

Nothing is downloaded: the four IDX files come from Debian's ``dataset-fashion-mnist``
(or any folder holding them, gzipped or not) and torchvision does the parsing. Partitions
come from flwr-datasets partitioners over an index column, so every node and the server
derive the same split from the seed alone, without shipping data around.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from flwr_stellar.app.config import DatasetSection

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training-set pixel statistics
NUM_CLASSES = 10
INSTALL_HINT = (
    "install it with `sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist`, "
    "or set dataset.root to a folder holding the four Fashion-MNIST IDX files"
)


class DatasetNotFoundError(FileNotFoundError):
    """The IDX files are not where the config says; the message says how to fix it."""


@dataclass(frozen=True)
class TensorSplit:
    """Normalised images (N, 1, 28, 28) float32 and int64 labels."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, indices: np.ndarray) -> TensorSplit:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return TensorSplit(self.x[idx], self.y[idx])


@dataclass(frozen=True)
class FederatedSplit:
    """Indices into the training set: a server validation split and one array per node."""

    server_val: np.ndarray
    partitions: tuple[np.ndarray, ...]


def resolve_cache_dir(cache_dir: str) -> Path:
    return Path(cache_dir).expanduser() if cache_dir else Path.home() / ".cache" / "flwr-stellar"


def prepare_raw_files(root: Path, cache_dir: Path) -> Path:
    """Put un-gzipped IDX files where torchvision looks (cache/FashionMNIST/raw/).

    Writes go through a temporary file and an atomic rename, because several simulated
    nodes may prepare the cache at the same moment.
    """
    raw = cache_dir / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in RAW_FILES:
        target = raw / name
        if target.exists():
            continue
        plain, packed = root / name, root / f"{name}.gz"
        if not plain.is_file() and not packed.is_file():
            raise DatasetNotFoundError(
                f"Fashion-MNIST file {packed} (or {plain}) not found; {INSTALL_HINT}"
            )
        source: io.BufferedIOBase = (
            plain.open("rb") if plain.is_file() else gzip.open(packed, "rb")  # noqa: SIM115
        )
        fd, tmp = tempfile.mkstemp(dir=raw, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "wb") as out, source as src:
                shutil.copyfileobj(src, out)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return cache_dir


@lru_cache(maxsize=2)
def load_fashion_mnist(root: str, cache_dir: str) -> tuple[TensorSplit, TensorSplit]:
    """(train 60k, test 10k), cached per process: every simulated node reuses one copy.

    torchvision parses the IDX files once; the decoded arrays are kept as .npy beside them,
    which loads ~50x faster in every later process (each simulated node is one).
    """
    base = prepare_raw_files(Path(root).expanduser(), resolve_cache_dir(cache_dir))
    splits = []
    for train in (True, False):
        images, labels = _decoded(base, train)
        x = (torch.from_numpy(images).unsqueeze(1).float() / 255.0 - MEAN) / STD
        splits.append(TensorSplit(x.contiguous(), torch.from_numpy(labels).long()))
    return splits[0], splits[1]


def _decoded(base: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    npz = base / "FashionMNIST" / f"{'train' if train else 'test'}.npz"
    if npz.exists():
        with np.load(npz) as f:
            return f["images"], f["labels"]
    from torchvision.datasets import FashionMNIST

    ds = FashionMNIST(str(base), train=train, download=False)
    images, labels = ds.data.numpy(), ds.targets.numpy()
    _save_npz_atomic(npz, images=images, labels=labels)
    return images, labels


def _save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """Concurrent node processes may race to write the same cache file; rename wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as out:
            np.savez(out, **arrays)  # type: ignore[arg-type]  # numpy stubs: savez(**kw)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def split_indices(
    labels: np.ndarray,
    num_partitions: int,
    *,
    partitioner: str,
    alpha: float,
    min_partition_size: int,
    server_val_size: int,
    seed: int,
) -> FederatedSplit:
    """Hold out a server validation split, then partition the rest among the nodes."""
    from datasets import Dataset
    from flwr_datasets.partitioner import DirichletPartitioner, IidPartitioner, Partitioner

    if num_partitions < 1:
        raise ValueError(f"num_partitions must be >= 1, got {num_partitions}")
    if server_val_size >= len(labels):
        raise ValueError(f"server_val_size {server_val_size} leaves no training data")
    server_val, pool = holdout(len(labels), server_val_size, seed)
    part: Partitioner
    if partitioner == "dirichlet":
        part = DirichletPartitioner(
            num_partitions,
            "label",
            alpha,
            min_partition_size=min_partition_size,
            self_balancing=False,
            shuffle=True,
            seed=seed,
        )
    elif partitioner == "iid":
        part = IidPartitioner(num_partitions)  # contiguous shards of an already shuffled pool
    else:
        raise ValueError(f"unknown partitioner {partitioner!r}")
    part.dataset = Dataset.from_dict({"label": labels[pool], "idx": pool})
    partitions = tuple(
        np.asarray(part.load_partition(i).with_format("numpy")[:]["idx"], dtype=np.int64)
        for i in range(num_partitions)
    )
    return FederatedSplit(server_val=server_val, partitions=partitions)


@lru_cache(maxsize=4)
def federated_split(cfg: DatasetSection, seed: int, num_partitions: int) -> FederatedSplit:
    """The split for this config, kept on disk: every node process would otherwise redo it."""
    train, _ = load_fashion_mnist(cfg.root, cfg.cache_dir)
    labels = train.y.numpy()
    params = [
        cfg.partitioner,
        cfg.alpha,
        cfg.min_partition_size,
        cfg.server_val_size,
        seed,
        num_partitions,
        hashlib.sha256(labels.tobytes()).hexdigest(),
    ]
    key = hashlib.sha256(json.dumps(params).encode()).hexdigest()[:24]
    path = resolve_cache_dir(cfg.cache_dir) / "splits" / f"{key}.npz"
    if path.exists():
        with np.load(path) as f:
            return FederatedSplit(f["server_val"], tuple(f[f"p{i}"] for i in range(num_partitions)))
    split = split_indices(
        labels,
        num_partitions,
        partitioner=cfg.partitioner,
        alpha=cfg.alpha,
        min_partition_size=cfg.min_partition_size,
        server_val_size=cfg.server_val_size,
        seed=seed,
    )
    _save_npz_atomic(
        path, server_val=split.server_val, **{f"p{i}": p for i, p in enumerate(split.partitions)}
    )
    return split


def train_val_split(
    indices: np.ndarray, val_fraction: float, seed: int, partition_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """A node's local train/validation split, fixed by (seed, partition id)."""
    perm = np.random.default_rng([seed, partition_id]).permutation(indices)
    n_val = round(len(perm) * val_fraction)
    return perm[n_val:], perm[:n_val]


def load_client_data(
    cfg: DatasetSection, seed: int, partition_id: int, num_partitions: int
) -> tuple[TensorSplit, TensorSplit]:
    """(local train, local validation) of one node."""
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition-id {partition_id} outside [0, {num_partitions})")
    train, _ = load_fashion_mnist(cfg.root, cfg.cache_dir)
    split = federated_split(cfg, seed, num_partitions)
    tr, va = train_val_split(split.partitions[partition_id], cfg.val_fraction, seed, partition_id)
    local = train.subset(tr)
    if partition_id in cfg.degraded() and cfg.label_noise > 0:
        local = with_label_noise(local, cfg.label_noise, seed, partition_id)
    return local, train.subset(va)


def with_label_noise(data: TensorSplit, share: float, seed: int, partition_id: int) -> TensorSplit:
    """The same images with ``share`` of the labels replaced by random classes (reproducible
    per seed and partition): an honest node whose data is worse, not a poisoner."""
    rng = np.random.default_rng([seed, partition_id, 7919])
    labels = data.y.clone()
    picked = rng.random(len(labels)) < share
    labels[torch.as_tensor(picked)] = torch.as_tensor(
        rng.integers(0, 10, int(picked.sum())), dtype=labels.dtype
    )
    return TensorSplit(data.x, labels)


def load_server_data(cfg: DatasetSection, seed: int) -> tuple[TensorSplit, TensorSplit]:
    """(server validation split of the training set, the 10k test set)."""
    train, test = load_fashion_mnist(cfg.root, cfg.cache_dir)
    server_val, _ = holdout(len(train), cfg.server_val_size, seed)
    return train.subset(server_val), test


def holdout(n: int, server_val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted server validation indices, shuffled pool left for the nodes)."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:server_val_size]), perm[server_val_size:]


def round_sample(n: int, cap: int, seed: int, partition_id: int, server_round: int) -> np.ndarray:
    """Which local examples a node trains on this round (all of them when cap is 0)."""
    if cap <= 0 or cap >= n:
        return np.arange(n)
    rng = np.random.default_rng([seed, partition_id, server_round])
    return np.sort(rng.choice(n, size=cap, replace=False))
