"""End to end: a provider collects what the reference app paid it, across runs and payouts.

Two runs of the reference app on one `ledger serve` with the same node keystores: node 0's
wallet lists both runs, collects into a fresh account of its own (which opened its trustline
itself) exactly what the manifests owe node 0, the sponsor's reserves come back, and a second
collect changes nothing. A claimable-payout run (quantized amounts, a reclaim after 30 days)
passes the audit, and the provider claims from another account it controls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ledger_helpers import serve_ledger
from stellar_sdk import ChangeTrust, Keypair

from flwr_stellar.app.simulation import run_app_simulation
from flwr_stellar.audit.cli import run_audit_for
from flwr_stellar.client.identity import DEV_PASSPHRASE
from flwr_stellar.client.journal import Journal, journal_path
from flwr_stellar.identity import keystore
from flwr_stellar.ledger.base import Ledger, NotFoundError
from flwr_stellar.ledger.embedded import DEFAULT_PASSPHRASE, EmbeddedLedger
from flwr_stellar.ledger.horizon import HorizonLedger
from flwr_stellar.ledger.tx import submit_signed
from flwr_stellar.payments.manifest import ManifestStore
from flwr_stellar.payments.treasury import DEV_TREASURY_PASSPHRASE, Treasury

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "flwr_stellar.cli"]
ENV = os.environ | {"FLWR_STELLAR_PASSPHRASE": DEV_PASSPHRASE}


def simulate(out: Path, **overrides: object) -> dict:
    run_app_simulation(
        {
            "num_rounds": 2,
            "dataset.max_train_examples": 200,
            "output_dir": str(out),
            "evaluation.central": False,
            "reward.scorer": "num-examples",
            **overrides,
        },
        num_supernodes=4,
    )
    return json.loads((out / "metrics.json").read_text())


def wallet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "wallet", *args], env=ENV, capture_output=True, text=True, timeout=300, check=False
    )


def owed_to(out: Path, pseudonyms: set[str]) -> int:
    """What every manifest in ``out`` pays those pseudonyms (payouts and releases)."""
    store = ManifestStore(out / "manifests")
    return sum(
        amount
        for digest in store.digests()
        for pseudonym, amount in store.get(digest).payments()
        if pseudonym in pseudonyms
    )


def fresh_account(ledger: Ledger, treasury: Treasury, folder: Path) -> tuple[Keypair, Path]:
    """A new account of the provider that opens its own DLC trustline; its seed in a 0600 file."""
    kp = Keypair.random()
    assert ledger.fund(kp.public_key).successful
    submit_signed(ledger, [kp], [ChangeTrust(treasury.asset)])
    secret = folder / f"{kp.public_key[:8]}.secret"
    secret.write_text(kp.secret)
    secret.chmod(0o600)
    return kp, secret


def treasury_of(out: Path) -> Treasury:
    master = keystore.load(out / "treasury.json", DEV_TREASURY_PASSPHRASE)
    return Treasury.from_master(master, "DLC")


def test_two_runs_on_one_ledger_serve_collected_once(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    with serve_ledger(tmp_path / "served.db") as url:
        served = {"ledger.backend": "horizon", "ledger.preset": "local", "ledger.horizon_url": url}
        first, second = simulate(out, **served), simulate(out, **served)
        assert first["status"] == second["status"] == "completed"
        ledger = HorizonLedger(url, DEFAULT_PASSPHRASE, friendbot_url=f"{url}/friendbot")
        node0 = out / "keystores" / "node-0.json"
        journal = Journal(journal_path(node0))
        runs = journal.runs()
        assert len(runs) == 2
        mine = {e["pseudonym"] for e in journal.entries(kind="sent")}
        assert len(mine) == 2  # one pseudonym a run
        where = ["--ledger", url, "--network-passphrase", DEFAULT_PASSPHRASE]
        listed = wallet("balances", str(node0), *where, "--json")
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)["runs"]
        assert sorted(r["run_id"] for r in rows) == runs
        owed = owed_to(out, mine)
        assert sum(r["total"] for r in rows) == owed > 0

        treasury = treasury_of(out)
        sponsoring = ledger.load_account(treasury.sponsor.public_key).num_sponsoring
        me, secret = fresh_account(ledger, treasury, tmp_path)
        collect = [
            "collect",
            str(node0),
            *where,
            "--to",
            me.public_key,
            "--fee-secret-file",
            str(secret),
        ]
        done = wallet(*collect)
        assert done.returncode == 0, done.stdout + done.stderr
        assert ledger.load_account(me.public_key).balance(treasury.asset_id) == owed
        # both pseudonyms merged: their account (2 reserves) and trustline (1) released
        released = sponsoring - ledger.load_account(treasury.sponsor.public_key).num_sponsoring
        assert released == 3 * len(mine)
        for pseudonym in mine:
            with pytest.raises(NotFoundError):
                ledger.load_account(pseudonym)
        again = wallet(*collect)
        assert again.returncode == 0 and "nothing to collect" in again.stdout, again.stderr
        assert ledger.load_account(me.public_key).balance(treasury.asset_id) == owed
        ledger.close()


def test_claimable_run_audits_and_is_claimed_by_another_account(tmp_path: Path) -> None:
    out = tmp_path / "run"
    metrics = simulate(
        out,
        **{"reward.payout": "claimable", "reward.quantum": "0.01", "reward.reclaim_after_days": 30},
    )
    assert metrics["status"] == "completed"
    rewards = metrics["rewards"]
    assert rewards and all(r["owed_stroops"] == r["balance_stroops"] > 0 for r in rewards.values())
    assert all(r["owed_stroops"] % 100_000 == 0 for r in rewards.values())  # 0.01 DLC quanta
    ledger = EmbeddedLedger(out / "ledger.db")
    treasury = treasury_of(out)
    sponsor = ledger.load_account(treasury.sponsor.public_key)
    assert sponsor.num_sponsoring == 0  # claimable payouts: nobody was onboarded
    for pseudonym in rewards:
        with pytest.raises(NotFoundError):
            ledger.load_account(pseudonym)  # paid without an account
    (report,) = run_audit_for(out, evidence=out / "keystores")
    assert report.passed, report.render()

    node0 = out / "keystores" / "node-0.json"
    mine = {e["pseudonym"] for e in Journal(journal_path(node0)).entries(kind="sent")}
    owed = owed_to(out, mine)
    assert owed == sum(rewards[p]["owed_stroops"] for p in mine)
    other, secret = fresh_account(ledger, treasury, tmp_path)
    ledger.close()
    where = ["--db", str(out / "ledger.db")]
    done = wallet(
        "collect", str(node0), *where, "--to", other.public_key, "--fee-secret-file", str(secret)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ledger = EmbeddedLedger(out / "ledger.db")
    assert ledger.load_account(other.public_key).balance(treasury.asset_id) == owed
    for pseudonym in mine:
        assert ledger.claimable_balances(claimant=pseudonym).records == ()
        with pytest.raises(NotFoundError):
            ledger.load_account(pseudonym)  # opened for the moment, then merged away
    assert ledger.verify_chain() > 0
    ledger.close()
    # the node's own check still holds: every receipt against the ledger
    check = subprocess.run(
        [*CLI, "node", "check", str(node0), *where, "--run-dir", str(out)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
