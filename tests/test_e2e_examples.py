"""End-to-end: the example Flower Apps (written without flwr-stellar, plus the README's lines)
run through `flwr run` on a local simulation federation, and the ledger agrees with them."""

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flwr_stellar.audit.cli import run_audit_for
from flwr_stellar.client.identity import DEV_PASSPHRASE, default_home
from flwr_stellar.flwr_run import local_superlink_pids
from flwr_stellar.identity import derive_pseudonym, keystore
from flwr_stellar.ledger.embedded import EmbeddedLedger
from flwr_stellar.payments.manifest import RoundManifest
from flwr_stellar.payments.treasury import DEV_TREASURY_PASSPHRASE, Treasury

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CHECK = [sys.executable, "-m", "flwr_stellar.cli", "node", "check"]
NODES, ROUNDS = 4, 2


@pytest.mark.parametrize("example", ["numpy-logreg", "pytorch-mlp"])
def test_example_app_is_paid_through_flwr_run(tmp_path: Path, example: str) -> None:
    out, flwr_home = tmp_path / "ledger-out", tmp_path / "flwr-home"
    home = default_home()  # the documented place of simulated nodes' dev keystores
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "flwr_stellar.cli",
                "flwr-run",
                "--app-dir",
                str(EXAMPLES / example),
                "--flwr-home",
                str(flwr_home),
                "--num-supernodes",
                str(NODES),
                "--run-config",
                f"num-server-rounds={ROUNDS}",
                f'ledger-dir="{out}"',
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        assert local_superlink_pids(flwr_home.resolve()) == [], "SuperLink left running"
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    run_id = int(proc.stdout.rsplit("flwr-stellar: run ", 1)[1].split()[0])

    manifests = [RoundManifest.decode(p.read_bytes()) for p in (out / "manifests").glob("*.json")]
    manifests = sorted((m for m in manifests if m.run_id == run_id), key=lambda m: m.server_round)
    assert [m.server_round for m in manifests] == list(range(1, ROUNDS + 1))
    assert manifests[1].previous == manifests[0].hash()  # the run's own chain

    master = keystore.load(out / "treasury.json", DEV_TREASURY_PASSPHRASE)
    treasury = Treasury.from_master(master, "DLC")
    ledger = EmbeddedLedger(out / "ledger.db")
    try:
        # every round anchored: a distributor transaction carries its manifest hash as memo
        records = ledger.account_transactions(treasury.distributor.public_key, limit=200).records
        memos = {
            base64.b64decode(t.memo).hex() for t in records if t.memo_type == "hash" and t.memo
        }
        assert {m.hash() for m in manifests} <= memos
        # honest nodes paid: exactly the pseudonyms the nodes derive from their own keystores
        nodes = {
            derive_pseudonym(
                keystore.load(home / "dev-keystores" / f"node-{i}.json", DEV_PASSPHRASE), run_id
            ).public_key
            for i in range(NODES)
        }
        owed: dict[str, int] = {}
        for m in manifests:
            assert m.round_paid + m.total_held == m.budget and not m.rejections
            for pseudonym, amount in m.payments():  # payouts, and the last round's releases
                owed[pseudonym] = owed.get(pseudonym, 0) + amount
        assert len(owed) == NODES and set(owed) == nodes and all(v > 0 for v in owed.values())
        # the ledger's balances equal the manifests
        for pseudonym, amount in owed.items():
            assert ledger.load_account(pseudonym).balance(treasury.asset_id) == amount
        assert ledger.verify_chain() >= 2 * ROUNDS  # raises if a header hash is broken
    finally:
        ledger.close()
    # both sides check the other: the nodes' journals against the run, each node's receipts
    # against the ledger
    evidence = home / "dev-keystores"
    (report,) = run_audit_for(out, evidence=evidence)
    assert report.passed, report.render()
    assert any(f.check == "evidence" and f.ok and f.server_round for f in report.findings)
    for i in range(NODES):
        check = [*CHECK, str(evidence / f"node-{i}.json"), "--db", str(out / "ledger.db")]
        done = subprocess.run(
            [*check, "--run-id", str(run_id), "--run-dir", str(out)],
            capture_output=True,
            text=True,
            env={**os.environ, "FLWR_STELLAR_PASSPHRASE": DEV_PASSPHRASE},
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
