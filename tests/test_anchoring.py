"""Anchoring and the outbox on a real embedded ledger: memo = manifest hash, payments made
once, and every half-finished state a crash can leave is settled without a duplicate."""

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from anchor_world import anchorer, manifest, pseudonyms, setup, treasury
from stellar_sdk import BumpSequence, ChangeTrust, Keypair

from flwr_stellar.failpoints import ENV
from flwr_stellar.ledger.embedded import EmbeddedLedger
from flwr_stellar.ledger.tx import submit_signed
from flwr_stellar.payments.anchoring import payment_parts
from flwr_stellar.payments.cli import outbox_status

HERE = Path(__file__).parent


def paid_to(ledger: EmbeddedLedger, address: str) -> int:
    return ledger.load_account(address).balance(treasury().asset_id)


@pytest.fixture
def world(tmp_path: Path):
    db = tmp_path / "ledger.db"
    setup(db, 3)
    return db, tmp_path


def test_rounds_are_anchored_and_paid_once(world) -> None:
    db, out = world
    payees = pseudonyms(3)
    a = anchorer(db, out)
    a.start()
    manifests = [manifest(1, payees), manifest(2, payees[:1]), manifest(3, [])]
    digests = [a.submit_round(m) for m in manifests]
    a.drain()
    ledger = EmbeddedLedger(db)
    for m, digest in zip(manifests, digests, strict=True):
        anchored = a.anchored[m.server_round]
        assert anchored.manifest_hash == digest and not anchored.failed
        assert anchored.paid == m.total_paid
        for tx_hash in anchored.tx_hashes:
            record = ledger.transaction(tx_hash)
            assert record.memo_type == "hash"
            assert base64.b64decode(record.memo or "").hex() == digest
    assert len(a.anchored[3].tx_hashes) == 1  # an empty round still anchors
    assert paid_to(ledger, payees[0].public_key) == 8 + 9
    assert paid_to(ledger, payees[1].public_key) == 8
    assert all(e.state == "done" for e in a.outbox.entries())
    # handing the same manifest over again pays nothing more
    a2 = anchorer(db, out)
    a2.start()
    a2.submit_round(manifests[0])
    a2.drain()
    assert paid_to(ledger, payees[0].public_key) == 17


def test_more_than_100_payees_split_into_transactions() -> None:
    payees = pseudonyms(230)
    parts = payment_parts(manifest(1, payees))
    assert [len(p) for p in parts] == [100, 100, 30]
    assert payment_parts(manifest(1, [])) == [[]]


def _signed_entry(db: Path, out: Path):
    a = anchorer(db, out)
    m = manifest(1, pseudonyms(3))
    digest = a.store.put(m)
    a.outbox.add(digest, 1, payment_parts(m))
    ledger = EmbeddedLedger(db)
    entry = a._sign(ledger, a.outbox.unfinished()[0])
    return a, ledger, entry


def test_resume_submits_a_signed_but_unsent_envelope(world) -> None:
    db, out = world
    a, ledger, entry = _signed_entry(db, out)
    a.settle_all(ledger)
    done = a.outbox.entries()[0]
    assert done.state == "done" and done.tx_hash == entry.tx_hash  # the same envelope
    assert paid_to(ledger, pseudonyms(3)[2].public_key) == 8


def test_resume_recognises_a_submitted_but_unmarked_envelope(world) -> None:
    db, out = world
    a, ledger, entry = _signed_entry(db, out)
    assert ledger.submit(entry.envelope).successful  # ...and then the process died
    a.settle_all(ledger)
    assert a.outbox.entries()[0].state == "done"
    assert paid_to(ledger, pseudonyms(3)[0].public_key) == 8  # not 16


def test_resume_rebuilds_a_dead_envelope(world) -> None:
    db, out = world
    a, ledger, entry = _signed_entry(db, out)
    # the signed envelope's sequence number gets used by another transaction
    submit_signed(ledger, [treasury().distributor], [BumpSequence(0)])
    a.settle_all(ledger)
    done = a.outbox.entries()[0]
    assert done.state == "done" and done.tx_hash != entry.tx_hash
    assert paid_to(ledger, pseudonyms(3)[1].public_key) == 8


def test_manifest_stored_but_never_journaled_is_paid_once_on_settling(world) -> None:
    """A process killed between storing a round's manifest and journaling it: the restart
    (and `payouts status|settle`) sees the round as pending and pays it exactly once."""
    db, out = world
    payees = pseudonyms(3)
    a = anchorer(db, out)
    digest = a.store.put(manifest(1, payees))  # ... and the process died here
    status = outbox_status(a.outbox, a.store)
    assert status["pending"] == [1] and status["rounds"]["1"][0]["manifest"] == digest
    ledger = EmbeddedLedger(db)
    assert a.settle_all(ledger)
    assert paid_to(ledger, payees[0].public_key) == 8
    assert a.journal_stored(ledger) == [] and a.settle_all(ledger)  # nothing twice
    assert paid_to(ledger, payees[0].public_key) == 8
    assert outbox_status(a.outbox, a.store)["pending"] == []
    # the journal lost (outbox.db deleted), the manifests kept: the ledger shows the round
    # anchored, so it is not paid again
    a.outbox.close()
    (out / "outbox.db").unlink()
    fresh = anchorer(db, out)
    assert fresh.journal_stored(ledger) == [] and fresh.settle_all(ledger)
    assert paid_to(ledger, payees[0].public_key) == 8


CRASH_SCRIPT = HERE / "anchor_crash_run.py"


@pytest.mark.slow
@pytest.mark.parametrize("point", ["outbox-signed", "outbox-submitted"])
def test_sigkill_at_each_point_loses_and_duplicates_nothing(tmp_path: Path, point: str) -> None:
    db = tmp_path / "ledger.db"
    setup(db, 5)
    rounds = 6
    env = {**os.environ, ENV: f"{point}:3"}
    first = subprocess.run(
        [sys.executable, str(CRASH_SCRIPT), str(db), str(tmp_path), str(rounds)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=HERE,
    )
    assert first.returncode == -9, first.stderr[-2000:]  # died by SIGKILL, mid-way
    env.pop(ENV)
    second = subprocess.run(
        [sys.executable, str(CRASH_SCRIPT), str(db), str(tmp_path), str(rounds)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=HERE,
    )
    assert second.returncode == 0, second.stderr[-2000:]
    ledger = EmbeddedLedger(db)
    payees = pseudonyms(5)
    expected = sum(7 + r for r in range(1, rounds + 1))
    for kp in payees:
        assert paid_to(ledger, kp.public_key) == expected
    assert ledger.verify_chain() > 0


def test_a_node_that_merged_its_pseudonym_cannot_fail_the_round_for_everyone(world) -> None:
    """Merging one's own pseudonym mid-run would turn the round's payment transaction into
    op_no_destination for every payee (and leave the round unanchored): that payee is paid by a
    claimable balance instead, the others as usual, the round anchored."""
    from stellar_sdk import AccountMerge

    db, out = world
    payees = pseudonyms(3)
    ledger = EmbeddedLedger(db)
    quitter = payees[1]
    sink = Keypair.random()
    ledger.fund(sink.public_key)
    submit_signed(
        ledger, [quitter], [ChangeTrust(treasury().asset, "0"), AccountMerge(sink.public_key)]
    )
    a = anchorer(db, out)
    a.start()
    digest = a.submit_round(manifest(1, payees))
    a.drain()
    anchored = a.anchored[1]
    assert not anchored.failed and anchored.manifest_hash == digest
    assert paid_to(ledger, payees[0].public_key) == 8 and paid_to(ledger, payees[2].public_key) == 8
    (waiting,) = ledger.claimable_balances(claimant=quitter.public_key).records
    assert waiting.amount == 8 and waiting.sponsor == treasury().distributor.public_key
    from flwr_stellar.audit.evidence import read_anchors

    found = read_anchors(ledger, treasury().distributor.public_key, {digest})
    assert not found.foreign[digest]
    assert found.paid_to(digest, quitter.public_key, treasury().asset_id) == 8
