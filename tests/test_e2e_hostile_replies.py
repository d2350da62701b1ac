"""End-to-end: replies built to crash the server, signed by their own nodes, in a real 6-node
Flower simulation of the reference app with client-side evaluation: the run completes, each
is rejected with its reason every round, the honest nodes are paid and the audit passes."""

import json
from pathlib import Path

import pytest

from flwr_stellar.app.simulation import run_app_simulation

pytestmark = pytest.mark.slow

ATTACKS = {"emptybytes": "1", "dtypehijack": "2", "listmetric": "3", "badeval": "4"}
EXPECTED_TRAIN = {"malformed-array", "structure-mismatch", "malformed-metrics"}


def test_crash_replies_are_rejected_and_the_run_completes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_app_simulation(
        {
            "num_rounds": 2,
            "dataset.max_train_examples": 200,
            "strategy.fraction_evaluate": 1.0,
            "output_dir": str(out),
            "attack.kind": ",".join(ATTACKS),
            "attack.nodes": ",".join(ATTACKS.values()),
            "reward.scorer": "num-examples",
        },
        num_supernodes=6,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    verification = metrics["verification"]
    for server_round in ("1", "2"):
        train = verification[server_round]["train"]
        assert sorted(r["reason"] for r in train["rejected"]) == sorted(EXPECTED_TRAIN)
        assert len(train["accepted"]) == 3  # the two honest nodes and badeval's honest update
        evaluate = verification[server_round]["evaluate"]
        assert [r["reason"] for r in evaluate["rejected"]] == ["implausible-num-examples"]
        assert len(evaluate["accepted"]) == 5
    rounds = {r["round"]: r for r in metrics["rounds"]}
    assert 0 < rounds[2]["client_accuracy"] <= 1  # no -200 examples in the average
    assert rounds[2]["central_accuracy"] > 0.3
    assert len(metrics["rewards"]) == 3
    assert all(r["owed_stroops"] == r["balance_stroops"] > 0 for r in metrics["rewards"].values())
    from flwr_stellar.audit.cli import run_audit_for

    (audit,) = run_audit_for(out)  # one run in the folder
    assert audit.passed, audit.render()
