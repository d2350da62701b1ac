"""`flwr-stellar audit`: passes on an honest run (embedded file and `ledger serve`), and each
kind of tampering fails it with a message naming the round and the object."""

import base64
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch
from ledger_helpers import serve_ledger
from stellar_sdk import Payment

from flwr_stellar.app.models import build_model
from flwr_stellar.app.simulation import run_app_simulation
from flwr_stellar.audit.cli import run_audit_for
from flwr_stellar.cli import main
from flwr_stellar.client.identity import DEV_PASSPHRASE
from flwr_stellar.identity import keystore
from flwr_stellar.ledger.amounts import format_amount
from flwr_stellar.ledger.embedded import EmbeddedLedger
from flwr_stellar.ledger.tx import build, submit_signed
from flwr_stellar.payments.manifest import RoundManifest
from flwr_stellar.payments.treasury import DEV_TREASURY_PASSPHRASE, Treasury

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def honest_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audit") / "run"
    run_app_simulation(
        {
            "num_rounds": 3,
            "dataset.max_train_examples": 100,
            "output_dir": str(out),
            "attack.kind": "nan",
            "attack.nodes": "1",
            "reward.scorer": "num-examples",  # the ledger is the subject: exact shares
        },
        num_supernodes=5,
    )
    return out


@pytest.fixture
def run_copy(honest_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(honest_run, copy)
    return copy


def manifests(run: Path) -> dict[int, tuple[Path, RoundManifest]]:
    out = {}
    for path in (run / "manifests").glob("*.json"):
        m = RoundManifest.decode(path.read_bytes())
        out[m.server_round] = (path, m)
    return out


def failures(run: Path, **kw) -> list[str]:
    (report,) = run_audit_for(run, **kw)
    return [f"round {f.server_round} {f.check}: {f.detail}" for f in report.failures]


def test_honest_run_passes_on_the_file_and_through_ledger_serve(honest_run: Path, tmp_path) -> None:
    out = tmp_path / "audit.json"
    assert main(["audit", str(honest_run), "--json", str(out)]) == 0
    (doc,) = json.loads(out.read_text())
    assert doc["passed"] and doc["rounds"] == [1, 2, 3]
    checks = {(f["check"], f["round"]) for f in doc["findings"]}
    for r in (1, 2, 3):
        assert {("anchor", r), ("payouts", r), ("chain", r), ("budget", r)} <= checks
    assert ("ledger-chain", None) in checks and ("model-link", 3) in checks
    served = tmp_path / "served.db"
    shutil.copy(honest_run / "ledger.db", served)
    with serve_ledger(served) as url:
        (report,) = run_audit_for(honest_run, url=url)
    assert report.passed, report.render()


def test_honest_run_passes_with_the_nodes_evidence_and_every_node_check(
    honest_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    evidence = honest_run / "keystores"
    (report,) = run_audit_for(honest_run, evidence=evidence)
    assert report.passed, report.render()
    judged = [f for f in report.findings if f.check == "evidence" and f.server_round]
    assert len(judged) == 5 * 3  # every node's reply of every round, the attacker's included
    assert any("receipt rejected" in f.detail for f in judged)  # the NaN node was told why
    terms = [f for f in report.findings if f.check == "terms"]
    assert terms and all(f.ok for f in terms)
    monkeypatch.setenv("FLWR_STELLAR_PASSPHRASE", DEV_PASSPHRASE)
    for node in sorted(evidence.glob("node-*.json")):
        code = main(["node", "check", str(node), "--db", str(honest_run / "ledger.db")])
        assert code == 0, capsys.readouterr().out


def test_manifest_edited_by_one_byte(run_copy: Path) -> None:
    path, _ = manifests(run_copy)[2]
    data = bytearray(path.read_bytes())
    data[data.index(b'"budget":') + 9] ^= 1  # one digit of the budget
    path.write_bytes(bytes(data))
    found = failures(run_copy)
    assert any(f"{path.name}: SHA-256 is" in f for f in found), found
    assert any(f.startswith("round 2 chain: no manifest") for f in found), found


def test_manifest_edited_and_renamed_to_its_new_hash(run_copy: Path) -> None:
    path, m = manifests(run_copy)[2]
    forged = RoundManifest(**{**m.__dict__, "config_hash": "0" * 64})
    path.unlink()
    (run_copy / "manifests" / f"{forged.hash()}.json").write_bytes(forged.encode())
    found = failures(run_copy)
    assert (
        f"round 2 anchor: no successful transaction from {m.distributor} carries MemoHash "
        f"{forged.hash()}" in found
    ), found
    assert any(f.startswith("round 3 chain: previous is") for f in found), found


def test_manifest_deleted(run_copy: Path) -> None:
    path, _ = manifests(run_copy)[2]
    path.unlink()
    found = failures(run_copy)
    assert any(f.startswith("round 2 chain: no manifest") for f in found), found
    assert any(f.startswith("round 3 chain: previous is") for f in found), found


def test_payout_changed_in_a_manifest(run_copy: Path) -> None:
    path, m = manifests(run_copy)[1]
    first, *rest = m.contributions
    changed = first.__class__(**{**first.__dict__, "payout": first.payout + 1})
    forged = RoundManifest(**{**m.__dict__, "contributions": (changed, *rest)})
    path.unlink()
    (run_copy / "manifests" / f"{forged.hash()}.json").write_bytes(forged.encode())
    found = failures(run_copy)
    assert (
        f"round 1 payouts: missing payment of {format_amount(first.payout + 1)} DLC "
        f"to {first.pseudonym}" in "; ".join(found)
    ), found


def test_extra_payment_under_a_rounds_memo(run_copy: Path) -> None:
    _, m = manifests(run_copy)[1]
    master = keystore.load(run_copy / "treasury.json", DEV_TREASURY_PASSPHRASE)
    treasury = Treasury.from_master(master, "DLC")
    payee = m.contributions[0].pseudonym
    ledger = EmbeddedLedger(run_copy / "ledger.db")
    try:
        top_up = Payment(treasury.distributor.public_key, treasury.asset, "10")
        submit_signed(ledger, [treasury.issuer], [top_up])  # it spent its whole budget
        sequence = ledger.load_account(treasury.distributor.public_key).sequence
        envelope = build(
            ledger,
            treasury.distributor.public_key,
            sequence,
            [Payment(payee, treasury.asset, "1")],
            memo_hash=bytes.fromhex(m.hash()),
        )
        envelope.sign(treasury.distributor)
        assert ledger.submit(envelope.to_xdr()).successful
    finally:
        ledger.close()
    found = failures(run_copy)
    assert f"round 1 payouts: extra payment of 1 {m.asset} to {payee}" in found, found


def test_payment_removed_from_the_embedded_ledger(run_copy: Path) -> None:
    _, m = manifests(run_copy)[2]
    db = sqlite3.connect(run_copy / "ledger.db")
    rows = db.execute("SELECT hash, memo FROM txs").fetchall()
    (tx_hash,) = [h for h, memo in rows if memo and base64.b64decode(memo).hex() == m.hash()]
    for table in ("txs", "tx_accounts", "payments"):
        db.execute(f"DELETE FROM {table} WHERE hash = ?", (tx_hash,))
    db.commit()
    db.close()
    found = failures(run_copy)
    assert any(f.startswith("round 2 anchor: no successful transaction") for f in found), found
    assert any(f.startswith("round None ledger-chain:") for f in found), found


def test_final_model_swapped(run_copy: Path) -> None:
    torch.save(build_model("cnn", seed=999).state_dict(), run_copy / "model.pt")
    found = failures(run_copy)
    assert len(found) == 1 and found[0].startswith("round 3 model-link: final model file"), found
    digest = hashlib.sha256((run_copy / "model.pt").read_bytes()).hexdigest()
    assert digest  # the file exists and was read


def test_ledger_explorer_on_the_file_and_through_ledger_serve(
    honest_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    by_round = {r: m for r, (_, m) in manifests(honest_run).items()}
    asset = by_round[1].asset
    owed: dict[str, int] = {}
    for m in by_round.values():
        for who, amount in m.payments():  # payouts, and the last round's releases
            owed[who] = owed.get(who, 0) + amount

    def explore(*args: str) -> object:
        assert main(["ledger", *args, "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    db = str(honest_run / "ledger.db")
    rows = explore("balances", "--db", db, "--asset", asset)
    holdings = {r["account"]: r["balance_stroops"] for r in rows if r["balance_stroops"]}
    assert holdings == owed  # the distributor spent its whole budget
    served = tmp_path / "served.db"
    shutil.copy(honest_run / "ledger.db", served)
    with serve_ledger(served) as url:
        assert explore("balances", "--ledger", url, "--asset", asset) == rows
        payee = by_round[1].contributions[0].pseudonym
        remote = explore("history", payee, "--ledger", url)
    local = explore("history", payee, "--db", db)
    assert local == remote
    memos = {t["memo"] for t in local if t["memo_type"] == "hash"}
    assert {m.hash() for m in by_round.values()} <= memos  # paid in every round
    view = explore("round", str(honest_run), "2")
    assert view["manifest_hash"] == by_round[2].hash()
    paid = sorted(
        (p["destination"], p["amount_stroops"]) for t in view["transactions"] for p in t["payments"]
    )
    assert paid == sorted(by_round[2].payments())
    assert main(["ledger", "round", str(honest_run), "9"]) == 2  # no such round: one clear line
    assert "no manifest for round 9" in capsys.readouterr().err
