"""Models and local training: learnable, seeded, FedProx term effective."""

import pytest
import torch

from flwr_stellar.app.data import TensorSplit
from flwr_stellar.app.models import MODELS, build_model, evaluate, train


def toy_data(n: int = 256, seed: int = 0) -> TensorSplit:
    """Class k lights up a different 4x4 patch: trivially learnable in one epoch."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = torch.randn(n, 1, 28, 28, generator=g) * 0.1
    for i, k in enumerate(y.tolist()):
        r, c = divmod(k, 5)
        x[i, 0, 4 + 10 * r : 8 + 10 * r, 2 + 5 * c : 6 + 5 * c] += 3.0
    return TensorSplit(x, y)


@pytest.mark.parametrize("name", list(MODELS))
def test_training_learns_a_learnable_task(name: str) -> None:
    torch.set_num_threads(1)
    data = toy_data()
    model = build_model(name, seed=0)
    before = evaluate(model, data)
    result = train(model, data, epochs=3, batch_size=32, lr=0.05, momentum=0.9, seed=0)
    loss, acc = evaluate(model, data)
    assert result.num_examples == len(data)
    assert loss < before[0] and acc > 0.9


def test_seeded_models_identical_and_unseeded_differ() -> None:
    a, b = build_model("cnn", seed=5), build_model("cnn", seed=5)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    c = build_model("cnn", seed=6)
    assert not torch.equal(a.state_dict()["fc2.weight"], c.state_dict()["fc2.weight"])
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        build_model("vgg")


def drift(mu: float) -> float:
    model = build_model("cnn_small", seed=0)
    start = [p.detach().clone() for p in model.parameters()]
    train(model, toy_data(), epochs=2, batch_size=16, lr=0.1, momentum=0.0, seed=0, proximal_mu=mu)
    return sum(
        float(((p.detach() - s) ** 2).sum()) for p, s in zip(model.parameters(), start, strict=True)
    )


def test_proximal_term_keeps_weights_closer_to_global() -> None:
    assert drift(10.0) < 0.5 * drift(0.0)


def test_empty_data_is_a_no_op() -> None:
    empty = TensorSplit(torch.empty(0, 1, 28, 28), torch.empty(0, dtype=torch.long))
    assert (
        train(
            build_model("cnn"), empty, epochs=1, batch_size=8, lr=0.1, momentum=0.0, seed=0
        ).num_examples
        == 0
    )
    assert evaluate(build_model("cnn"), empty) == (0.0, 0.0)
