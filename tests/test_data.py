"""Partitions: deterministic, disjoint, covering; Dirichlet skew; clear missing-file errors."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from flwr_stellar.app import data
from flwr_stellar.app.config import AppConfig


def synthetic_labels() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 10, size=6000)


def split(
    labels: np.ndarray, n: int, partitioner: str = "dirichlet", alpha: float = 0.5, seed: int = 1
) -> data.FederatedSplit:
    return data.split_indices(
        labels,
        n,
        partitioner=partitioner,
        alpha=alpha,
        min_partition_size=5,
        server_val_size=500,
        seed=seed,
    )


@pytest.mark.parametrize("partitioner", ["dirichlet", "iid"])
def test_partitions_deterministic_disjoint_and_covering(partitioner: str) -> None:
    labels = synthetic_labels()
    a, b = split(labels, 7, partitioner), split(labels, 7, partitioner)
    for pa, pb in zip(a.partitions, b.partitions, strict=True):
        np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(a.server_val, b.server_val)
    everything = np.concatenate([a.server_val, *a.partitions])
    assert len(everything) == len(labels) == len(np.unique(everything))
    assert len(a.server_val) == 500
    other = split(labels, 7, partitioner, seed=2)
    assert not all(
        np.array_equal(x, y) for x, y in zip(a.partitions, other.partitions, strict=True)
    )


def skew(labels: np.ndarray, fs: data.FederatedSplit) -> float:
    """Mean total-variation distance of each partition's label mix from the global mix."""
    glob = np.bincount(labels, minlength=10) / len(labels)
    tvs = [
        0.5 * np.abs(np.bincount(labels[p], minlength=10) / len(p) - glob).sum()
        for p in fs.partitions
    ]
    return float(np.mean(tvs))


def test_dirichlet_skew_grows_as_alpha_falls() -> None:
    labels = synthetic_labels()
    skews = [skew(labels, split(labels, 10, alpha=a)) for a in (100.0, 1.0, 0.1)]
    iid = skew(labels, split(labels, 10, "iid"))
    assert iid < 0.1
    assert skews[0] < skews[1] < skews[2]
    assert skews[2] > 0.5


def test_client_train_val_split_is_fixed_and_disjoint() -> None:
    idx = np.arange(100, 300)
    tr, va = data.train_val_split(idx, 0.1, seed=3, partition_id=4)
    tr2, va2 = data.train_val_split(idx, 0.1, seed=3, partition_id=4)
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(va, va2)
    assert len(va) == 20 and not set(tr) & set(va) and set(tr) | set(va) == set(idx)
    _, va_other = data.train_val_split(idx, 0.1, seed=3, partition_id=5)
    assert not np.array_equal(va, va_other)


def test_round_sample_changes_per_round_and_respects_cap() -> None:
    r1 = data.round_sample(1000, 100, seed=1, partition_id=0, server_round=1)
    r2 = data.round_sample(1000, 100, seed=1, partition_id=0, server_round=2)
    assert len(r1) == 100 == len(np.unique(r1)) and not np.array_equal(r1, r2)
    np.testing.assert_array_equal(r1, data.round_sample(1000, 100, 1, 0, 1))
    np.testing.assert_array_equal(data.round_sample(50, 100, 1, 0, 1), np.arange(50))
    np.testing.assert_array_equal(data.round_sample(50, 0, 1, 0, 1), np.arange(50))


def test_real_fashion_mnist_federation(defaults: AppConfig) -> None:
    cfg = defaults.dataset
    train, test = data.load_fashion_mnist(cfg.root, cfg.cache_dir)
    assert (len(train), len(test)) == (60000, 10000)
    assert train.x.shape[1:] == (1, 28, 28) and abs(float(train.x.mean())) < 0.05
    fs = data.federated_split(cfg, defaults.seed, 10)
    union = np.concatenate([fs.server_val, *fs.partitions])
    assert len(union) == 60000 == len(np.unique(union))
    server_val, test2 = data.load_server_data(cfg, defaults.seed)
    assert len(server_val) == cfg.server_val_size and test2 is test
    np.testing.assert_array_equal(server_val.y.numpy(), train.y.numpy()[fs.server_val])
    local_train, local_val = data.load_client_data(cfg, defaults.seed, 3, 10)
    assert len(local_train) + len(local_val) == len(fs.partitions[3])
    with pytest.raises(ValueError, match="partition-id 10 outside"):
        data.load_client_data(cfg, defaults.seed, 10, 10)


def test_missing_files_error_names_file_and_fix(tmp_path: Path, defaults: AppConfig) -> None:
    cfg = replace(defaults.dataset, root=str(tmp_path / "nowhere"), cache_dir=str(tmp_path / "c"))
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_fashion_mnist(cfg.root, cfg.cache_dir)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and "apt-get install" in message


def test_plain_idx_files_are_accepted(tmp_path: Path, defaults: AppConfig) -> None:
    """A folder of un-gzipped IDX files works as dataset.root, parsed by torchvision."""
    gz_root = Path(defaults.dataset.root)
    plain = tmp_path / "plain"
    plain.mkdir()
    import gzip

    for name in data.RAW_FILES:
        (plain / name).write_bytes(gzip.decompress((gz_root / f"{name}.gz").read_bytes()))
    train, test = data.load_fashion_mnist(str(plain), str(tmp_path / "cache"))
    reference, _ = data.load_fashion_mnist(defaults.dataset.root, defaults.dataset.cache_dir)
    assert len(test) == 10000
    assert bool((train.y == reference.y).all())
