"""End-to-end: the reference app in Flower's simulation with value scorers (first-order and
kernel-shapley on the server's validation split). Signed attackers of each kind get nothing or
clearly less than the honest median; honest nodes share the budget."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from flwr_stellar.app.simulation import run_app_simulation

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("kind", "scorer"),
    [
        ("labelflip", "first-order"),
        ("noise", "first-order"),
        ("lazy", "first-order"),
        ("signflip1", "kernel-shapley"),
    ],
)
def test_attackers_earn_little_under_value_scoring(tmp_path: Path, kind: str, scorer: str) -> None:
    out = tmp_path / "run"
    run_app_simulation(
        {
            "num_rounds": 2,
            "dataset.max_train_examples": 300,
            "evaluation.central": False,
            "reward.scorer": scorer,
            "reward.validation_examples": 500,
            "attack.kind": kind,
            "attack.nodes": "1,4",
            "output_dir": str(out),
        },
        num_supernodes=6,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    roles, rewards = metrics["roles"], metrics["rewards"]
    owed = {p: r["owed_stroops"] for p, r in rewards.items()}
    attackers = [owed.get(p, 0) for p, role in roles.items() if role == "attacker"]
    honest = [owed.get(p, 0) for p, role in roles.items() if role != "attacker"]
    assert len(attackers) == 2 and len(honest) == 4
    median = statistics.median(honest)
    assert median > 0
    assert all(a <= 0.5 * median for a in attackers), (kind, attackers, honest)
    assert sum(honest) >= 0.85 * (sum(honest) + sum(attackers))
    manifests = [json.loads(p.read_text()) for p in (out / "manifests").glob("*.json")]
    assert {m["scoring"]["name"] for m in manifests} == {scorer}
    most = 1 if scorer == "first-order" else 33  # one gradient; or the budget + the start
    assert all(0 < m["scoring"]["evaluations"] <= most for m in manifests)
