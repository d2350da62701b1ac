"""Synthetic binary data (a fixed ground-truth hyperplane) and NumPy logistic regression."""

from __future__ import annotations

import numpy as np

FEATURES = 20


def load_partition(partition_id: int, num_partitions: int, n: int = 400) -> tuple[np.ndarray, ...]:
    """Train/test split of this node's samples; every node sees the same true hyperplane."""
    truth = np.random.default_rng(0).normal(size=FEATURES + 1)
    rng = np.random.default_rng(1000 + partition_id)
    x = rng.normal(size=(n, FEATURES)) + 0.3 * partition_id / max(num_partitions, 1)
    y = (x @ truth[:-1] + truth[-1] + 0.3 * rng.normal(size=n) > 0).astype(np.float64)
    cut = int(0.8 * n)
    return x[:cut], y[:cut], x[cut:], y[cut:]


def init_params() -> list[np.ndarray]:
    return [np.zeros(FEATURES), np.zeros(1)]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def train(
    params: list[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> tuple[list[np.ndarray], float]:
    w, b = params[0].copy(), params[1].copy()
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            err = _sigmoid(x[idx] @ w + b) - y[idx]
            w -= lr * x[idx].T @ err / len(idx)
            b -= lr * err.mean(keepdims=True)
    return [w, b], evaluate([w, b], x, y)[0]


def evaluate(params: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    p = _sigmoid(x @ params[0] + params[1])
    loss = float(-np.mean(y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12)))
    return loss, float(np.mean((p > 0.5) == y))
