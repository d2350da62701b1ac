"""Outages: every transport failure is LedgerUnavailableError; the anchoring worker waits them
out (settling by hash, never paying twice) and, when the ledger stays down past the deadline,
leaves the rounds journaled for `flwr-stellar payouts settle`."""

import hashlib
import socket
from pathlib import Path

import pytest
from anchor_world import manifest, pseudonyms, setup, treasury
from stellar_sdk import Account, Keypair, TransactionBuilder

from flwr_stellar.cli import main
from flwr_stellar.identity import keystore
from flwr_stellar.ledger.base import LedgerUnavailableError
from flwr_stellar.ledger.embedded import DEFAULT_PASSPHRASE, EmbeddedLedger
from flwr_stellar.ledger.horizon import HorizonLedger
from flwr_stellar.payments import anchoring
from flwr_stellar.payments.anchoring import Anchorer
from flwr_stellar.payments.manifest import ManifestStore
from flwr_stellar.payments.outbox import Outbox
from flwr_stellar.payments.treasury import DEV_TREASURY_PASSPHRASE


class FlakyLedger:
    """The embedded ledger behind a link that is down for the first ``down`` calls (or always),
    and, once, loses the answer of a submission that did apply."""

    def __init__(self, db: Path, down: int | None, lose_answer: bool = False) -> None:
        self.inner = EmbeddedLedger(db)
        self.down, self.calls, self.lose_answer = down, 0, lose_answer

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        attr = getattr(self.inner, name)
        if name in ("network_passphrase", "location", "close") or not callable(attr):
            return attr

        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.down is None or self.calls <= self.down:
                raise LedgerUnavailableError("connection refused (test)")
            result = attr(*args, **kwargs)
            if name == "submit" and self.lose_answer:
                self.lose_answer = False
                raise LedgerUnavailableError("timed out after the ledger applied it (test)")
            return result

        return call


def paid(db: Path, kp: Keypair) -> int:
    ledger = EmbeddedLedger(db)
    try:
        return ledger.load_account(kp.public_key).balance(treasury().asset_id)
    finally:
        ledger.close()


def test_horizon_transport_failures_are_one_documented_error() -> None:
    with socket.socket() as s:  # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ledger = HorizonLedger(f"http://127.0.0.1:{port}", DEFAULT_PASSPHRASE, timeout=2)
    kp = Keypair.random()
    tx = TransactionBuilder(Account(kp.public_key, 1), DEFAULT_PASSPHRASE, 100)
    tx = tx.append_bump_sequence_op(0).set_timeout(60).build()
    tx.sign(kp)
    envelope = tx.to_xdr()
    for call in (
        lambda: ledger.load_account(Keypair.random().public_key),
        lambda: ledger.transaction("0" * 64),
        lambda: ledger.submit(envelope),
        lambda: ledger.account_transactions(Keypair.random().public_key),
    ):
        with pytest.raises(LedgerUnavailableError, match=f"127.0.0.1:{port}"):
            call()


def test_worker_waits_out_an_outage_and_pays_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(anchoring, "BACKOFF_START_S", 0.01)
    db = tmp_path / "ledger.db"
    setup(db, 3)
    payees = pseudonyms(3)
    worker = Anchorer(
        lambda: FlakyLedger(db, down=7, lose_answer=True),
        treasury(),
        Outbox(tmp_path / "outbox.db"),
        ManifestStore(tmp_path / "manifests"),
    )
    worker.start()
    for r in (1, 2, 3):
        worker.submit_round(manifest(r, payees))
    worker.drain(timeout=30)
    assert all(e.state == "done" for e in worker.outbox.entries())
    assert [paid(db, kp) for kp in payees] == [8 + 9 + 10] * 3  # each round exactly once


def test_rounds_left_pending_are_settled_from_the_command_line(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(anchoring, "BACKOFF_START_S", 0.01)
    db = tmp_path / "ledger.db"
    setup(db, 2)
    payees = pseudonyms(2)
    keystore.save(
        tmp_path / "treasury.json",
        keystore.MasterSecret(hashlib.sha256(b"treasury").digest()),  # anchor_world's treasury
        DEV_TREASURY_PASSPHRASE,
    )
    outbox = Outbox(tmp_path / "outbox.db")
    worker = Anchorer(
        lambda: FlakyLedger(db, down=None),  # down for good
        treasury(),
        outbox,
        ManifestStore(tmp_path / "manifests"),
    )
    worker.start()
    for r in (1, 2):
        worker.submit_round(manifest(r, payees))
    worker.drain(timeout=0.2)  # returns: no traceback, the rounds stay journaled
    assert worker.anchored[1].pending and worker.anchored[2].pending
    outbox.close()
    assert [paid(db, kp) for kp in payees] == [0, 0]
    assert main(["payouts", "status", str(tmp_path)]) == 1
    assert "2 round(s) pending: [1, 2]" in capsys.readouterr().out
    assert main(["payouts", "settle", str(tmp_path)]) == 0  # the ledger is reachable again
    assert "all settled" in capsys.readouterr().out
    assert [paid(db, kp) for kp in payees] == [8 + 9] * 2
    assert main(["payouts", "settle", str(tmp_path)]) == 0  # idempotent: nothing paid twice
    assert [paid(db, kp) for kp in payees] == [8 + 9] * 2
    assert main(["payouts", "status", str(tmp_path)]) == 0


def test_settling_leftovers_gives_up_after_its_timeout(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(anchoring, "BACKOFF_START_S", 0.01)
    db = tmp_path / "ledger.db"
    setup(db, 1)
    a = Anchorer(
        lambda: FlakyLedger(db, down=None),
        treasury(),
        Outbox(tmp_path / "outbox.db"),
        ManifestStore(tmp_path / "manifests"),
    )
    a.outbox.add("ab" * 32, 1, [[(pseudonyms(1)[0].public_key, 5)]])
    down = FlakyLedger(db, down=None)
    assert a.settle_all(down, timeout=0.1) is False  # returns, does not hang
    assert [e.state for e in a.outbox.unfinished()] == ["pending"]
    assert a.settle_all(FlakyLedger(db, down=0), timeout=0.1) is True
    assert paid(db, pseudonyms(1)[0]) == 5
