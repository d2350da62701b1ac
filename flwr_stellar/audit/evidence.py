"""What the audit and ``node check`` read besides manifests: signed terms and node journals.

The run's terms (``RUN_DIR/terms/<sha256>.json`` with its ``.sig``) are signed by the
distributor, so the operator cannot swap them afterwards without the signature (or the node
journals holding the originals) showing it. A node's journal holds what it signed and sent and
the receipts the distributor signed for it; an auditor given those journals can tell an
operator who dropped, relabelled or underpaid a reply from one who did not.

What cannot be re-derived by a third party: value scores that price updates on the server's
private validation data (the terms commit to that data's hash, the data stays private), the
screening verdicts that read update contents (the updates are not published; a receipt only
proves what the server said it decided), and trust (reputation) values, which the manifests
state but do not prove.
"""

from __future__ import annotations

import base64
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stellar_sdk import Keypair
from stellar_sdk.exceptions import BadSignatureError, Ed25519PublicKeyInvalidError

from flwr_stellar.client.journal import SENT, SUFFIX, Journal
from flwr_stellar.ledger.base import Ledger
from flwr_stellar.ledger.decode import PaymentOp, decode_envelope, iter_transactions
from flwr_stellar.payments.manifest import RoundManifest
from flwr_stellar.protocol.errors import RecordError
from flwr_stellar.protocol.receipts import ACCEPTED, Receipt, SignedReceipt
from flwr_stellar.protocol.terms import SignedTerms
from flwr_stellar.reasons import Reason


@dataclass
class Anchors:
    """What the ledger shows under each wanted MemoHash from one distributor."""

    transactions: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    paid: dict[str, Counter[PaymentOp]] = field(default_factory=lambda: defaultdict(Counter))
    foreign: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def paid_to(self, memo: str, account: str, asset: str) -> int:
        """Stroops of ``asset`` paid to ``account`` under ``memo``."""
        return sum(
            amount * n
            for (dest, paid_asset, amount), n in self.paid[memo].items()
            if dest == account and paid_asset == asset
        )


def read_anchors(ledger: Ledger, distributor: str, wanted: Iterable[str]) -> Anchors:
    """Every successful transaction of ``distributor`` under a wanted memo, decoded.

    Parameters
    ----------
    ledger : Ledger
        Any backend (the embedded file, Horizon).
    distributor : str
        The run's paying account.
    wanted : iterable of str
        Manifest hashes (hex).
    """
    memos = set(wanted)
    found = Anchors()
    for record in iter_transactions(ledger, distributor):
        if record.memo_type != "hash" or not record.memo or not record.successful:
            continue
        memo = base64.b64decode(record.memo).hex()
        if memo not in memos:
            continue
        source, payments, others = decode_envelope(record)
        if source != distributor:
            found.foreign[memo].append(f"transaction {record.hash} from {source}")
            continue
        found.transactions[memo].append(record.hash)
        found.paid[memo].update(payments)
        found.foreign[memo].extend(f"{o} in {record.hash}" for o in others)
    return found


@dataclass(frozen=True)
class SentReply:
    """A training reply a node journaled as signed and sent."""

    journal: Path
    run_id: int
    server_round: int
    pseudonym: str
    digest: str
    signature: str
    num_examples: int = 0
    federation: str = "default"  # the label its pseudonym was derived under

    @property
    def who(self) -> str:
        return f"node {self.pseudonym} ({self.journal.name})"

    def signature_verifies(self) -> bool:
        """Whether the node's signature over its digest is valid: then no honest server can
        have found the reply's signature bad, unless the reply changed on the way."""
        try:
            Keypair.from_public_key(self.pseudonym).verify(
                bytes.fromhex(self.digest), bytes.fromhex(self.signature)
            )
        except (BadSignatureError, Ed25519PublicKeyInvalidError, ValueError):
            return False
        return True


@dataclass
class RunEvidence:
    """One journal's evidence about one run."""

    journal: Path
    terms: SignedTerms | None
    sent: list[SentReply]
    receipts: list[Receipt]
    unverifiable: int = 0  # receipts in the journal not signed by the terms' distributor

    def receipts_for(self, sent: SentReply) -> list[Receipt]:
        """Every receipt about ``sent`` (two that differ: the server said two things)."""
        return [
            r
            for r in self.receipts
            if r.server_round == sent.server_round
            and r.pseudonym == sent.pseudonym
            and r.reply_digest in (sent.digest, "")
        ]

    def receipt_for(self, sent: SentReply) -> Receipt | None:
        found = self.receipts_for(sent)
        return found[0] if found else None


def journals_under(directory: Path) -> list[Path]:
    """Every node journal in a folder tree (``*.journal``)."""
    return sorted(p for p in directory.rglob(f"*{SUFFIX}") if p.is_file())


def run_evidence(path: Path, run_id: int) -> RunEvidence:
    """What the journal at ``path`` holds about ``run_id``, receipts verified."""
    journal = Journal(path)
    signed_terms = journal.terms(run_id)
    terms = None
    if signed_terms is not None:
        try:
            terms = SignedTerms.from_signed(signed_terms)
        except RecordError:
            terms = None
    sent = [
        SentReply(
            path,
            run_id,
            int(e.get("server_round", -1)),
            str(e.get("pseudonym", "")),
            str(e.get("digest", "")),
            str(e.get("signature", "")),
            e["num_examples"] if type(e.get("num_examples")) is int else 0,
            str(e.get("federation") or "default"),
        )
        for e in journal.entries(run_id, SENT)
        if e.get("message_type") == "train"
    ]
    if terms is not None and terms.terms.run_id != run_id:
        terms = None  # another run's terms, moved into this one
    receipts, unverifiable = [], 0
    for signed in journal.receipts(run_id):
        try:
            if terms is None:
                raise RecordError("no terms")
            receipt = SignedReceipt.verify(signed, terms.terms.distributor).receipt
            if receipt.run_id != run_id or receipt.terms != terms.digest:
                raise RecordError("another run's receipt, or under other terms")
            receipts.append(receipt)
        except RecordError:
            unverifiable += 1
    return RunEvidence(path, terms, sent, receipts, unverifiable)


def contradictions(
    receipt: Receipt,
    manifest: RoundManifest | None,
    sent: SentReply,
    rejections: Counter[tuple[str, str]] | None = None,
) -> list[str]:
    """How a receipt disagrees with the run's manifest of its round (``[]``: it agrees).

    Parameters
    ----------
    rejections : Counter, optional
        The round's manifest rejections as (reason, pseudonym) not yet claimed by another
        receipt: each rejected receipt takes one, so two receipts cannot point at one row.
    """
    if manifest is None:
        return [f"its receipt names manifest {receipt.manifest}, and the run has no such round"]
    if manifest.hash() != receipt.manifest:
        return [
            f"its receipt names manifest {receipt.manifest[:16]}…, the run's round "
            f"{receipt.server_round} is {manifest.hash()[:16]}…"
        ]
    problems = []
    if receipt.terms != manifest.terms:
        problems.append("its receipt is under other terms than the manifest cites")
    if receipt.status == ACCEPTED:
        rows = [c for c in manifest.contributions if c.pseudonym == sent.pseudonym]
        if not rows:
            problems.append("accepted by its receipt, absent from the manifest")
        else:
            row = rows[0]
            said: dict[str, Any] = {"score": receipt.score, "payout": receipt.payout}
            said |= {"held": receipt.held, "num_examples": receipt.num_examples}
            shown = {"score": row.score, "payout": row.payout, "held": row.held}
            shown["num_examples"] = row.num_examples
            problems += [
                f"receipt {k} {said[k]}, manifest {shown[k]}" for k in said if said[k] != shown[k]
            ]
    else:
        pool = (
            rejections
            if rejections is not None
            else Counter((r.reason, r.pseudonym) for r in manifest.rejections)
        )
        for key in ((receipt.reason, sent.pseudonym), (receipt.reason, "")):
            if pool[key] > 0:
                pool[key] -= 1
                break
        else:
            problems.append(f"rejected ({receipt.reason}) by its receipt, not in the manifest")
    return problems + receipt_disputes(receipt, sent)


def receipt_disputes(receipt: Receipt, sent: SentReply) -> list[str]:
    """What the node's own record refutes in a receipt, without any manifest: a reply called
    ``bad-signature`` although the node's signature over the very digest the receipt cites
    verifies, or a receipt citing another digest than the node sent."""
    problems = []
    cites_sent = receipt.reply_digest == sent.digest
    if receipt.reason == Reason.BAD_SIGNATURE and cites_sent and sent.signature_verifies():
        problems.append(
            "called bad-signature, but the node's signature over the digest the receipt cites "
            "verifies"
        )
    if not cites_sent:
        problems.append(
            "the receipt cites another digest than the node sent"
            if receipt.reply_digest
            else "the receipt cites no digest for a reply the node signed"
        )
    cut = sent.num_examples and receipt.num_examples != sent.num_examples
    if cut and receipt.status == ACCEPTED:
        problems.append(
            f"the node claimed {sent.num_examples} examples, the receipt says "
            f"{receipt.num_examples}"
        )
    return problems
