"""End-to-end: LedgerStrategy in real Flower simulations with hostile nodes, on the embedded
ledger and on the same ledger behind `ledger serve` (HorizonLedger + stellar_sdk)."""

import base64
import json
from pathlib import Path

import pytest
from ledger_helpers import serve_ledger

from flwr_stellar.app.simulation import run_app_simulation
from flwr_stellar.ledger.base import Ledger, NotFoundError
from flwr_stellar.ledger.embedded import DEFAULT_PASSPHRASE, EmbeddedLedger
from flwr_stellar.ledger.horizon import HorizonLedger
from flwr_stellar.payments.manifest import ManifestStore

pytestmark = pytest.mark.slow

HOSTILE = {"attack.kind": "nan,signflip", "attack.nodes": "1,4"}


def run(out: Path, **overrides) -> dict:
    run_app_simulation(
        {
            "num_rounds": 3,
            "dataset.max_train_examples": 200,
            "output_dir": str(out),
            "evaluation.central": False,
            **HOSTILE,
            "reward.scorer": "num-examples",  # the ledger is the subject: exact shares
            **overrides,
        },
        num_supernodes=6,
    )
    return json.loads((out / "metrics.json").read_text())


def check_accounts(metrics: dict, out: Path, ledger: Ledger) -> None:
    assert metrics["status"] == "completed"
    verification = metrics["verification"]
    hostile_reasons = set()
    for server_round in ("1", "2", "3"):
        train = verification[server_round]["train"]
        assert len(train["accepted"]) == 4
        rejected = {r["node"]: r["reason"] for r in train["rejected"]}
        assert len(rejected) == 2 and set(rejected) & set(map(int, train["accepted"])) == set()
        hostile_reasons |= set(rejected.values())
    assert "non-finite" in hostile_reasons
    assert hostile_reasons <= {"non-finite", "norm-outlier", "cosine-too-low"}

    store = ManifestStore(out / "manifests")
    asset = metrics["asset"]
    paid_total = 0
    hostile = set()
    for server_round, anchor in metrics["anchors"].items():
        manifest = store.get(anchor["manifest"])
        assert manifest.server_round == int(server_round)
        assert len(manifest.contributions) == 4 and len(manifest.rejections) == 2
        hostile |= {r.pseudonym for r in manifest.rejections}
        assert manifest.round_paid + manifest.total_held == manifest.budget == 100 * 10_000_000
        assert anchor["paid_stroops"] == manifest.total_paid and not anchor["problems"]
        for tx_hash in anchor["transactions"]:
            tx = ledger.transaction(tx_hash)
            assert tx.successful and base64.b64decode(tx.memo or "").hex() == manifest.hash()
        paid_total += manifest.total_paid
    rewards = metrics["rewards"]
    assert len(rewards) == 4 and not hostile & set(rewards)
    for pseudonym, r in rewards.items():
        assert r["owed_stroops"] == r["balance_stroops"] > 0
        assert ledger.load_account(pseudonym).balance(asset) == r["balance_stroops"]
    for pseudonym in hostile - {""}:  # screened-out pseudonyms were never paid
        with pytest.raises(NotFoundError):
            ledger.load_account(pseudonym)
    assert sum(r["balance_stroops"] for r in rewards.values()) == paid_total


def test_hostile_nodes_are_screened_out_and_honest_ones_paid(tmp_path: Path) -> None:
    out = tmp_path / "run"
    metrics = run(out)
    ledger = EmbeddedLedger(out / "ledger.db")
    check_accounts(metrics, out, ledger)
    assert ledger.verify_chain() > 0


def test_same_run_through_ledger_serve_and_the_sdk(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with serve_ledger(tmp_path / "served.db") as url:
        metrics = run(
            out,
            **{
                "ledger.backend": "horizon",
                "ledger.preset": "local",
                "ledger.horizon_url": url,
            },
        )
        assert metrics["ledger"]["backend"] == "horizon"
        check_accounts(metrics, out, HorizonLedger(url, DEFAULT_PASSPHRASE))
    assert not (out / "ledger.db").exists()
