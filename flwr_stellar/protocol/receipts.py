"""Receipts: the server's signed word on what it did with each training reply it received.

For every round, each node whose reply the server received gets a receipt signed by the run's
distributor: the digest of the reply as the server saw it, accepted or rejected (and why), its
score, its payout and what was held back, the hash of the round's manifest and of the run's
terms. The server cannot deny a receipt it signed; a node can hold it against the manifest and
the ledger (``flwr-stellar node check``) and hand it to an auditor (``audit --evidence``).

Receipts travel with the next instruction the node gets (in a ``flwr-stellar.receipts``
ConfigRecord) until the node has answered one that carried them; after the last round the
server sends what is still undelivered in a delivery message (a ``train`` message holding only
the receipts and the delivery marker), which the client wrapper answers itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flwr.app import ConfigRecord

from flwr_stellar.protocol.canonical import SignedDocument, check_document, field_of, hex64
from flwr_stellar.protocol.errors import RecordError, require_version
from flwr_stellar.protocol.text import shown

RECEIPTS_RECORD = "flwr-stellar.receipts"  # an instruction's ConfigRecord with receipts
DELIVERY_RECORD = "flwr-stellar.delivery"  # marks a message that only delivers receipts
VERSION = 1
FORMAT = "flwr-stellar/receipt/v1"
DOMAIN = b"flwr-stellar/receipt/v1"
RECEIPTS_LIMIT = 256  # receipts one record may carry
ACCEPTED, REJECTED = "accepted", "rejected"
REASON_LIMIT = 64  # characters of a rejection reason (the manifests' words are short)


@dataclass(frozen=True)
class Receipt:
    """What the server did with one training reply.

    Parameters
    ----------
    run_id, server_round : int
        The instruction the reply answered.
    node_id : int
        The Flower node the reply came from.
    pseudonym : str
        The account the reply was signed by (as claimed when the signature did not verify).
    reply_digest : str
        SHA-256 (hex) the server computed over the reply and its binding (``""`` when the
        reply could not be read far enough to compute it).
    status : str
        ``accepted`` or ``rejected``.
    reason : str
        The rejection reason (the manifests' word), ``""`` when accepted.
    num_examples : int
        The claim the server read from the reply (0 when it could not read one), so a node can
        see its claim was not cut down.
    score, payout, held : int
        The manifest's score, the stroops paid this round and the stroops held back.
    manifest : str
        SHA-256 of the round's manifest: its MemoHash on the ledger.
    terms : str
        SHA-256 of the run's signed terms.
    """

    run_id: int
    server_round: int
    node_id: int
    pseudonym: str
    reply_digest: str
    status: str
    reason: str
    num_examples: int
    score: int
    payout: int
    held: int
    manifest: str
    terms: str

    def __post_init__(self) -> None:
        if self.status not in (ACCEPTED, REJECTED):
            raise RecordError(f"receipt status {shown(self.status)}")
        if (self.status == ACCEPTED) == bool(self.reason):
            raise RecordError("a receipt gives a reason exactly when it rejects")
        if min(self.score, self.payout, self.held, self.num_examples) < 0:
            raise RecordError("receipt amounts must be >= 0")
        if len(self.reason) > REASON_LIMIT or not self.reason.isascii():
            raise RecordError(f"receipt reason must be ASCII of at most {REASON_LIMIT} characters")
        if len(self.pseudonym) > 56 or not self.pseudonym.isascii():
            raise RecordError("receipt pseudonym is not a Stellar account id")
        hex64(self.reply_digest, "receipt reply_digest", empty=True)
        hex64(self.manifest, "receipt manifest")
        hex64(self.terms, "receipt terms")

    def document(self) -> dict[str, Any]:
        return {"format": FORMAT, **{k: getattr(self, k) for k in self.__dataclass_fields__}}

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Receipt:
        """Read a receipt document; RecordError naming the first bad field."""
        check_document(doc, FORMAT, cls.__dataclass_fields__, "receipt")
        ints = ("run_id", "server_round", "node_id", "num_examples", "score", "payout", "held")
        values = {k: field_of(doc, k, int, "receipt") for k in ints}
        texts = set(cls.__dataclass_fields__) - set(ints)
        values |= {k: field_of(doc, k, str, "receipt") for k in texts}
        return cls(**values)

    def sign(self, distributor: Any) -> SignedReceipt:
        return SignedReceipt(self, SignedDocument.sign(self.document(), distributor, DOMAIN))


@dataclass(frozen=True)
class SignedReceipt:
    """A receipt and the distributor's signature; ``signed.digest`` names it."""

    receipt: Receipt
    signed: SignedDocument

    @classmethod
    def verify(cls, signed: SignedDocument, distributor: str) -> SignedReceipt:
        """A receipt signed by ``distributor``; RecordError otherwise."""
        return cls(Receipt.from_document(signed.verify(distributor, DOMAIN)), signed)


def receipts_record(receipts: Iterable[SignedReceipt]) -> ConfigRecord:
    """The record an instruction carries its receipts in."""
    chosen = list(receipts)
    return ConfigRecord(
        {
            "version": VERSION,
            "documents": [r.signed.data for r in chosen],
            "signatures": [r.signed.signature for r in chosen],
        }
    )


def read_receipts_record(record: object) -> list[SignedDocument]:
    """The signed documents of a receipts record, unverified (the reader knows the run's
    distributor); RecordError when the record is malformed."""
    if not isinstance(record, ConfigRecord):
        raise RecordError("receipts record is not a ConfigRecord")
    require_version(record, VERSION, "receipts")
    documents, signatures = record.get("documents", []), record.get("signatures", [])
    if not isinstance(documents, list) or not isinstance(signatures, list):
        raise RecordError("receipts record: documents and signatures must be lists")
    if len(documents) != len(signatures) or len(documents) > RECEIPTS_LIMIT:
        raise RecordError(
            f"receipts record: {len(documents)} documents, {len(signatures)} signatures "
            f"(at most {RECEIPTS_LIMIT}, one each)"
        )
    if not all(isinstance(x, bytes) for x in (*documents, *signatures)):
        raise RecordError("receipts record: documents and signatures must be bytes")
    return [
        SignedDocument(d, s)
        for d, s in zip(documents, signatures, strict=True)
        if isinstance(d, bytes) and isinstance(s, bytes)
    ]
