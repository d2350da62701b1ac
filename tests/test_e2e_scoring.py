"""End-to-end: the reference app in Flower's simulation with a value scorer (kernel-shapley on
the server's validation split). Signed attackers of each kind get nothing or clearly less than
the honest median; honest nodes share the budget."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from flwr_stellar.app.simulation import run_app_simulation

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["labelflip", "noise", "lazy", "signflip1"])
def test_attackers_earn_little_under_kernel_shapley(tmp_path: Path, kind: str) -> None:
    out = tmp_path / "run"
    run_app_simulation(
        {
            "num_rounds": 2,
            "dataset.max_train_examples": 300,
            "evaluation.central": False,
            "reward.scorer": "kernel-shapley",
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
    assert {m["scoring"]["name"] for m in manifests} == {"kernel-shapley"}
    assert all(0 < m["scoring"]["evaluations"] <= 33 for m in manifests)
