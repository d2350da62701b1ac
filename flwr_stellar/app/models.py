"""Small CNNs for 28x28 greyscale images, and the local train / test loops."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from flwr_stellar.app.data import NUM_CLASSES, TensorSplit


class CNN(nn.Module):
    """conv32-conv64-fc128: ~85-90% on Fashion-MNIST within a few federated rounds."""

    def __init__(self, width: int = 32, hidden: int = 128) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3)
        self.conv2 = nn.Conv2d(width, 2 * width, 3)
        self.fc1 = nn.Linear(2 * width * 5 * 5, hidden)
        self.fc2 = nn.Linear(hidden, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


MODELS: dict[str, Callable[[], nn.Module]] = {
    "cnn": CNN,
    "cnn_small": lambda: CNN(width=16, hidden=64),
}


def build_model(name: str, seed: int | None = None) -> nn.Module:
    """A fresh model; with a seed, the same initial weights on every call."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {tuple(MODELS)}")
    if seed is None:
        return MODELS[name]()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return MODELS[name]()


@dataclass(frozen=True)
class TrainResult:
    loss: float
    accuracy: float
    num_examples: int


def train(
    model: nn.Module,
    data: TensorSplit,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    momentum: float,
    seed: int,
    proximal_mu: float = 0.0,
) -> TrainResult:
    """Plain SGD; with proximal_mu > 0, FedProx's proximal term keeps w near the start."""
    if len(data) == 0:
        return TrainResult(loss=0.0, accuracy=0.0, num_examples=0)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    anchor = [p.detach().clone() for p in model.parameters()] if proximal_mu > 0 else []
    gen = torch.Generator().manual_seed(seed)
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=gen)
        for start in range(0, len(data), batch_size):
            idx = order[start : start + batch_size]
            x, y = data.x[idx], data.y[idx]
            opt.zero_grad(set_to_none=True)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            if anchor:
                prox = sum(
                    ((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor, strict=True)
                )
                (loss + 0.5 * proximal_mu * prox).backward()
            else:
                loss.backward()
            opt.step()
            total_loss += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
    return TrainResult(loss=total_loss / seen, accuracy=correct / seen, num_examples=len(data))


@torch.no_grad()
def evaluate(model: nn.Module, data: TensorSplit, batch_size: int = 1000) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy); (0, 0) on an empty split."""
    if len(data) == 0:
        return 0.0, 0.0
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(data), batch_size):
        x, y = data.x[start : start + batch_size], data.y[start : start + batch_size]
        logits = model(x)
        total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    return total_loss / len(data), correct / len(data)
