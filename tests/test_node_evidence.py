"""The node's side: it refuses forged or changed terms and keeps no forged receipt; its journal
survives a SIGKILL mid-write, readable and with nothing duplicated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from helpers import RUN_ID, instruction, node_context
from hypothesis import given, settings
from hypothesis import strategies as st
from stellar_sdk import Keypair

from flwr_stellar.client.journal import Journal
from flwr_stellar.client.mod import signing_mod
from flwr_stellar.protocol.canonical import SignedDocument
from flwr_stellar.protocol.challenge import CHALLENGE_RECORD, Challenge
from flwr_stellar.protocol.digest import SIGNATURE_RECORD
from flwr_stellar.protocol.errors import RecordError
from flwr_stellar.protocol.receipts import (
    DELIVERY_RECORD,
    RECEIPTS_RECORD,
    Receipt,
    SignedReceipt,
    receipts_record,
)
from flwr_stellar.protocol.terms import TERMS_RECORD, RewardTerms, SignedTerms

DISTRIBUTOR = Keypair.random()
ISSUER = Keypair.random().public_key


def terms(**changes) -> RewardTerms:
    base = RewardTerms(
        run_id=RUN_ID,
        distributor=DISTRIBUTOR.public_key,
        asset_code="DLC",
        asset_issuer=ISSUER,
        budget_stroops=1_000_000_000,
        held_stroops=500_000_000,
        num_rounds=3,
        scorer="num-examples",
        settings_hash="a" * 64,
    )
    return replace(base, **changes)


def app(msg: Message, context) -> Message:
    arrays = ArrayRecord({"w": Array(np.ones(3, np.float32))})
    return Message(
        RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 5})}), reply_to=msg
    )


def train(signed: SignedTerms, server_round: int = 1, announce: bytes | None = None, **records):
    """A training instruction as the server sends it, with the given terms."""
    challenge = Challenge.fresh(RUN_ID, server_round, terms=announce or signed.digest_bytes)
    content = RecordDict(
        {
            "arrays": ArrayRecord({"w": Array(np.zeros(3, np.float32))}),
            CHALLENGE_RECORD: challenge.to_record(),
            TERMS_RECORD: signed.to_record(),
            **records,
        }
    )
    return instruction(content, "train", RUN_ID)


def journal_of(tmp: Path) -> Journal:
    return Journal.beside(tmp / "keystores" / "node-0.json")


def test_the_node_signs_under_the_terms_and_journals_them(tmp_path) -> None:
    signed = terms().sign(DISTRIBUTOR)
    reply = signing_mod(train(signed), node_context(tmp_path), app)
    assert not reply.has_error() and SIGNATURE_RECORD in reply.content
    assert reply.content[SIGNATURE_RECORD]["terms"] == signed.digest_bytes
    journal = journal_of(tmp_path)
    assert journal.terms(RUN_ID).digest == signed.digest
    (sent,) = journal.entries(RUN_ID, "sent")
    assert sent["terms"] == signed.digest and sent["server_round"] == 1
    assert oct(journal.path.stat().st_mode & 0o777) == "0o600"


def _forged_by_another_key() -> SignedTerms:
    other = Keypair.random()
    doc = terms().document()
    forged = SignedDocument.sign(doc, other, b"flwr-stellar/terms/v2")
    return SignedTerms(terms(), forged)


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (_forged_by_another_key, "not signed by"),
        (lambda: terms(run_id=RUN_ID + 1).sign(DISTRIBUTOR), "for run"),
        (lambda: terms(asset_issuer=Keypair.random().public_key).sign(DISTRIBUTOR), "pinned"),
    ],
    ids=["other-key", "other-run", "other-issuer"],
)
def test_forged_terms_are_refused(tmp_path, make, why) -> None:
    context = node_context(tmp_path)
    context.node_config["dlc-issuer"] = ISSUER
    signed = make()
    reply = signing_mod(train(signed), context, app)
    assert reply.has_error() and why in reply.error.reason, reply.error.reason
    assert journal_of(tmp_path).entries() == []


def test_a_change_of_terms_within_a_run_is_refused(tmp_path) -> None:
    first = terms().sign(DISTRIBUTOR)
    assert not signing_mod(train(first), node_context(tmp_path), app).has_error()
    cheaper = terms(budget_stroops=1, held_stroops=0).sign(DISTRIBUTOR)  # validly signed
    reply = signing_mod(train(cheaper, 2), node_context(tmp_path), app)
    assert reply.has_error() and "terms changed within run" in reply.error.reason
    assert journal_of(tmp_path).terms(RUN_ID).digest == first.digest


def test_terms_other_than_the_challenge_announces_are_refused(tmp_path) -> None:
    signed = terms().sign(DISTRIBUTOR)
    reply = signing_mod(train(signed, announce=b"\x01" * 32), node_context(tmp_path), app)
    assert reply.has_error() and "challenge announced" in reply.error.reason
    missing = train(signed)
    del missing.content[TERMS_RECORD]
    reply = signing_mod(missing, node_context(tmp_path), app)
    assert reply.has_error() and "does not carry" in reply.error.reason


def _receipt(sent: dict, signed: SignedTerms, **changes) -> Receipt:
    base = Receipt(
        run_id=RUN_ID,
        server_round=sent["server_round"],
        node_id=100,
        pseudonym=sent["pseudonym"],
        reply_digest=sent["digest"],
        status="accepted",
        reason="",
        num_examples=5,
        score=5,
        payout=100,
        held=100,
        manifest="b" * 64,
        terms=signed.digest,
    )
    return replace(base, **changes)


def _changed_after_signing(receipt: Receipt, key: str, value) -> SignedReceipt:
    good = receipt.sign(DISTRIBUTOR)
    doc = json.loads(good.signed.data)
    doc[key] = value
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return SignedReceipt(receipt, SignedDocument(data, good.signed.signature))


def test_forged_receipts_are_kept_out_of_the_journal_and_the_round_goes_on(tmp_path, caplog):
    signed = terms().sign(DISTRIBUTOR)
    signing_mod(train(signed), node_context(tmp_path), app)
    journal = journal_of(tmp_path)
    (sent,) = journal.entries(RUN_ID, "sent")
    good = _receipt(sent, signed)
    forged = [
        good.sign(Keypair.random()),  # wrong key
        _changed_after_signing(good, "server_round", 2),  # wrong round
        _changed_after_signing(good, "reply_digest", "c" * 64),  # wrong digest
        _changed_after_signing(good, "payout", 10**9),  # a better payout
        replace(good, reply_digest="d" * 64).sign(DISTRIBUTOR),  # signed, for another reply
        replace(good, server_round=3).sign(DISTRIBUTOR),  # signed, for a round not sent
        replace(good, terms="e" * 64).sign(DISTRIBUTOR),  # signed, under other terms
    ]
    before = journal.path.read_bytes()
    for i, receipt in enumerate(forged):
        msg = train(signed, 2, **{RECEIPTS_RECORD: receipts_record([receipt])})
        reply = signing_mod(msg, node_context(tmp_path), app)
        assert not reply.has_error(), (i, reply.error.reason)  # the round is not lost
        assert journal.entries(RUN_ID, "receipt") == [], i
    assert len(journal.path.read_bytes()) > len(before)  # only the new sent entries
    assert sum("receipt" in r.message for r in caplog.records if r.levelname == "WARNING") >= 7
    # the genuine receipt is journaled once, however often it is delivered
    for _ in range(3):
        delivery = RecordDict(
            {
                RECEIPTS_RECORD: receipts_record([good.sign(DISTRIBUTOR)]),
                DELIVERY_RECORD: ConfigRecord({"version": 1}),
            }
        )
        reply = signing_mod(instruction(delivery, "train", RUN_ID), node_context(tmp_path), app)
        assert not reply.has_error() and DELIVERY_RECORD in reply.content
    assert len(journal.entries(RUN_ID, "receipt")) == 1


WRITER = """
import sys
from flwr_stellar.client.journal import Journal
journal = Journal(__import__("pathlib").Path(sys.argv[1]))
for i in range(int(sys.argv[2])):
    journal.append({"kind": "sent", "run_id": 1, "server_round": i, "digest": f"{i:064x}",
                    "pseudonym": "G", "signature": "00",
                    "pad": "x" * (i * 37 % 5000)})
"""


def test_the_journal_survives_sigkill_mid_write(tmp_path) -> None:
    path = tmp_path / "node.journal"
    entries = 400
    kills = 0
    for attempt in range(12):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(entries)])
        time.sleep(0.15 + 0.05 * attempt)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        found, _ = Journal(path).scan()
        rounds = [e["server_round"] for e in found]
        assert rounds == sorted(set(rounds)), "an entry written twice or out of order"
        assert rounds == list(range(len(rounds)))  # a prefix: nothing lost before the cut
    assert kills >= 3
    subprocess.run([sys.executable, "-c", WRITER, str(path), str(entries)], check=True)
    found, damaged = Journal(path).scan()
    assert [e["server_round"] for e in found] == list(range(entries))
    lines = [x for x in path.read_bytes().split(b"\n") if x]
    assert len(lines) == entries + damaged  # torn lines stay skipped, never duplicated


SENT = {"kind": "sent", "run_id": 1, "pseudonym": "G", "signature": "00"}


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=600), st.integers(0, 3))
def test_garbage_in_a_journal_never_breaks_reading_or_appending(tmp_path_factory, junk, n):
    path = tmp_path_factory.mktemp("j") / "node.journal"
    journal = Journal(path)
    journal.append({**SENT, "server_round": 0, "digest": "0" * 64})
    with path.open("ab") as f:
        f.write(junk)
    for i in range(n):
        journal.append({**SENT, "server_round": i + 1, "digest": "1" * 64})
    rounds = [e["server_round"] for e in journal.entries(1, "sent")]
    assert rounds == [0, *range(1, n + 1)]


@settings(max_examples=80, deadline=None)
@given(
    st.integers(0, 2**63),
    st.integers(0, 2**40),
    st.sampled_from(["accepted", "rejected"]),
    st.text(alphabet=st.characters(max_codepoint=126), max_size=40),
)
def test_receipts_round_trip_and_any_change_breaks_the_signature(run_id, amount, status, reason):
    reason = (reason or "x") if status == "rejected" else ""
    receipt = Receipt(
        run_id,
        1,
        7,
        DISTRIBUTOR.public_key,
        "f" * 64,
        status,
        reason,
        5,
        amount,
        amount,
        0,
        "a" * 64,
        "b" * 64,
    )
    signed = receipt.sign(DISTRIBUTOR)
    assert SignedReceipt.verify(signed.signed, DISTRIBUTOR.public_key).receipt == receipt
    flipped = bytearray(signed.signed.data)
    flipped[len(flipped) // 2] ^= 1
    with pytest.raises(RecordError):
        SignedReceipt.verify(
            SignedDocument(bytes(flipped), signed.signed.signature), DISTRIBUTOR.public_key
        )
