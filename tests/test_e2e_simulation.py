"""End-to-end: the real Flower App in the real Simulation Runtime (Ray), in-process."""

import json
from pathlib import Path

import pytest
import torch

from flwr_stellar.app.models import build_model
from flwr_stellar.app.simulation import run_app_simulation

pytestmark = pytest.mark.slow


def test_four_nodes_two_rounds_beat_chance(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_app_simulation(
        {
            "num_rounds": 2,
            "dataset.max_train_examples": 300,
            "strategy.fraction_evaluate": 1.0,
            "output_dir": str(out),
        },
        num_supernodes=4,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    rounds = {r["round"]: r for r in metrics["rounds"]}
    assert set(rounds) == {0, 1, 2}
    assert rounds[0]["central_accuracy"] < 0.2  # untrained: about chance (10 classes)
    assert rounds[2]["central_accuracy"] > 0.35  # clearly better than chance
    assert rounds[2]["central_loss"] < rounds[0]["central_loss"]
    assert "train_loss" in rounds[1] and 0 < rounds[2]["client_accuracy"] <= 1
    assert metrics["config"]["num_rounds"] == 2
    model = build_model("cnn")
    model.load_state_dict(torch.load(out / "model.pt"))
