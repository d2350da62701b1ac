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


def _pay_by_partition(out: Path) -> dict[int, int]:
    from flwr_stellar.client.identity import DEV_PASSPHRASE
    from flwr_stellar.identity import derive_pseudonym, keystore

    metrics = json.loads((out / "metrics.json").read_text())
    partition_of = {
        derive_pseudonym(keystore.load(p, DEV_PASSPHRASE), metrics["run_id"]).public_key: int(
            p.stem.split("-")[1]
        )
        for p in (out / "keystores").glob("node-*.json")
    }
    return {partition_of[p]: r["owed_stroops"] for p, r in metrics["rewards"].items()}


def test_contribution_follows_data(tmp_path: Path) -> None:
    """IID partitions; nodes 0 and 1 honest but with 30% of their labels wrong. Under exact
    Shapley (63 coalitions), kernel-shapley (32 evaluations), first-order and the data-free
    gradient-similarity, both earn less than every clean node."""
    pays = {}
    scorers = (
        ("exact-shapley", 64),
        ("kernel-shapley", 32),
        ("first-order", 32),
        ("gradient-similarity", 32),
    )
    for scorer, budget in scorers:
        out = tmp_path / scorer
        run_app_simulation(
            {
                "num_rounds": 3,
                "dataset.max_train_examples": 300,
                "dataset.partitioner": "iid",
                "dataset.degraded_nodes": "0,1",
                "dataset.label_noise": 0.3,
                "evaluation.central": False,
                "reward.scorer": scorer,
                "reward.scoring_budget": budget,
                "reward.validation_examples": 500,
                "output_dir": str(out),
            },
            num_supernodes=6,
        )
        pays[scorer] = _pay_by_partition(out)
    for scorer, pay in pays.items():
        assert len(pay) == 6
        assert max(pay[0], pay[1]) < min(pay[p] for p in range(2, 6)), (scorer, pay)
