"""End-to-end: signed replies in a real Flower simulation; forgeries and replays rejected."""

import json
from pathlib import Path

import pytest

from flwr_stellar.app.simulation import run_app_simulation
from flwr_stellar.client.identity import DEV_PASSPHRASE
from flwr_stellar.identity import derive_pseudonym, keystore

pytestmark = pytest.mark.slow


def run(tmp_path: Path, attack: str, nodes: str) -> dict:
    out = tmp_path / attack
    run_app_simulation(
        {
            "num_rounds": 3,
            "dataset.max_train_examples": 100,
            "output_dir": str(out),
            "attack.kind": attack,
            "attack.nodes": nodes,
        },
        num_supernodes=4,
    )
    return json.loads((out / "metrics.json").read_text()) | {"out": out}


def test_signed_replies_and_tampering_rejected(tmp_path: Path) -> None:
    metrics = run(tmp_path, "tamper", "1")
    verification = metrics["verification"]
    run_id = metrics["run_id"]
    expected = {
        keystore.load(metrics["out"] / "keystores" / f"node-{pid}.json", DEV_PASSPHRASE)
        for pid in range(4)
    }
    pseudonyms = {derive_pseudonym(m, run_id).public_key for m in expected}
    for server_round in ("1", "2", "3"):
        train = verification[server_round]["train"]
        accepted = set(train["accepted"].values())
        assert len(accepted) == 3 and accepted < pseudonyms  # one pseudonym per node
        assert [r["reason"] for r in train["rejected"]] == ["bad-signature"]
    # every honest node kept the same pseudonym through the run
    per_node = [set(verification[r]["train"]["accepted"].items()) for r in ("1", "2", "3")]
    assert per_node[0] == per_node[1] == per_node[2]
    rounds = {r["round"]: r for r in metrics["rounds"]}
    assert rounds[3]["replies_rejected"] == 1 and rounds[3]["central_accuracy"] > 0.2


def test_replayed_reply_rejected(tmp_path: Path) -> None:
    metrics = run(tmp_path, "replay", "0,2")
    verification = metrics["verification"]
    assert verification["1"]["train"]["rejected"] == []  # nothing to replay yet
    for server_round in ("2", "3"):
        rejected = verification[server_round]["train"]["rejected"]
        assert sorted(r["reason"] for r in rejected) == ["wrong-round", "wrong-round"]
        assert len(verification[server_round]["train"]["accepted"]) == 2
