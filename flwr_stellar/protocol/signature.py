"""The signature record a node adds to its reply, and the ed25519 sign / verify around it.

The record names the signing pseudonym and repeats the binding (run, round, nonce, instruction,
type) it signed, so the server can say precisely which of them is wrong before it even checks
the signature. Verification returns a reason from the shared vocabulary, never raises on bad
input: a reply from the network is data, not a crash.
"""

from __future__ import annotations

from dataclasses import dataclass

from flwr.app import ConfigRecord, Message, RecordDict
from stellar_sdk import Keypair
from stellar_sdk.exceptions import BadSignatureError, Ed25519PublicKeyInvalidError

from flwr_stellar.protocol.challenge import RUN_ID_BOUND
from flwr_stellar.protocol.digest import DIGEST_VERSION, SIGNATURE_RECORD, Binding, reply_digest
from flwr_stellar.protocol.errors import RecordError
from flwr_stellar.protocol.text import parse_decimal, shown
from flwr_stellar.reasons import Reason

__all__ = [
    "SIGNATURE_RECORD",
    "SignatureRecord",
    "Verdict",
    "sign_reply",
    "verify_content",
    "verify_reply",
]

SIGNATURE_BYTES = 64


@dataclass(frozen=True)
class SignatureRecord:
    """A reply's signature and what it was made over.

    Parameters
    ----------
    address : str
        The pseudonym's Stellar account id (``G...``).
    signature : bytes
        64-byte ed25519 signature over :func:`reply_digest`.
    binding : Binding
        The instruction the reply answers, as the node saw it.
    version : int
        Digest version.
    """

    address: str
    signature: bytes
    binding: Binding
    version: int = DIGEST_VERSION

    def to_record(self) -> ConfigRecord:
        b = self.binding
        return ConfigRecord(
            {
                "version": self.version,
                "address": self.address,
                "signature": self.signature,
                "run-id": str(b.run_id),
                "server-round": b.server_round,
                "nonce": b.nonce,
                "instruction-id": b.instruction_id,
                "message-type": b.message_type,
                "terms": b.terms,
            }
        )

    @classmethod
    def from_record(cls, record: object) -> SignatureRecord:
        """Read a signature record; raise RecordError for anything malformed (never another
        error: the run id is ASCII decimal text, read without ``int`` ever failing)."""
        if not isinstance(record, ConfigRecord):
            raise RecordError("signature record is not a ConfigRecord")
        if record.get("version") != DIGEST_VERSION:
            raise RecordError(f"version {record.get('version')!r}")
        address, signature = record.get("address"), record.get("signature")
        if not isinstance(address, str) or not isinstance(signature, bytes):
            raise RecordError("address or signature malformed")
        if len(signature) != SIGNATURE_BYTES:
            raise RecordError(f"signature is {len(signature)} bytes, expected {SIGNATURE_BYTES}")
        run_id, server_round, nonce = (
            record.get("run-id"),
            record.get("server-round"),
            record.get("nonce"),
        )
        instruction_id, message_type = record.get("instruction-id"), record.get("message-type")
        terms = record.get("terms", b"")
        run_number = parse_decimal(run_id, RUN_ID_BOUND)  # '١١'.isdigit(), but it is not 11
        if run_number is None:
            raise RecordError(f"run-id {shown(run_id)} is not ASCII decimal text")
        if (
            not isinstance(server_round, int)
            or isinstance(server_round, bool)
            or not isinstance(nonce, bytes)
            or not isinstance(instruction_id, str)
            or not isinstance(message_type, str)
            or not isinstance(terms, bytes)
        ):
            raise RecordError("binding fields malformed")
        binding = Binding(run_number, server_round, nonce, instruction_id, message_type, terms)
        return cls(address, signature, binding)


@dataclass(frozen=True)
class Verdict:
    """What verification concluded about one reply.

    Parameters
    ----------
    pseudonym : str or None
        The claimed signer, when the record named one.
    reason : Reason or None
        None when the reply verified.
    detail : str
        Human-readable particulars for the log.
    digest : str
        The reply's digest (hex) under the binding its signature record names (the expected
        one, unless a ``wrong-*`` reason says which field differs), whenever the record could
        be read: what the server's receipt for the reply cites.
    """

    pseudonym: str | None
    reason: Reason | None = None
    detail: str = ""
    digest: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is None


def sign_reply(content: RecordDict, binding: Binding, keypair: Keypair) -> tuple[bytes, bytes]:
    """Add the signature record to ``content`` in place.

    Parameters
    ----------
    content : RecordDict
        The reply's records, final: anything changed afterwards breaks the signature.
    binding : Binding
        The instruction being answered.
    keypair : Keypair
        The pseudonym; its secret never leaves this call.

    Returns
    -------
    tuple[bytes, bytes]
        The digest signed and the signature (what the node's journal keeps).
    """
    digest = reply_digest(content, binding)
    signature = keypair.sign(digest)
    content[SIGNATURE_RECORD] = SignatureRecord(keypair.public_key, signature, binding).to_record()
    return digest, signature


def verify_content(content: RecordDict, expected: Binding) -> Verdict:
    """Check the signature record of ``content`` against what the server expects.

    Parameters
    ----------
    content : RecordDict
        The reply's records.
    expected : Binding
        The instruction the server sent, with its nonce.
    """
    if SIGNATURE_RECORD not in content:
        return Verdict(None, Reason.MISSING_SIGNATURE, "reply carries no signature record")
    raw = content[SIGNATURE_RECORD]
    if isinstance(raw, ConfigRecord) and raw.get("version") != DIGEST_VERSION:
        return Verdict(None, Reason.UNKNOWN_VERSION, f"version {raw.get('version')!r}")
    try:
        record = SignatureRecord.from_record(raw)
        public = Keypair.from_public_key(record.address)
    except RecordError as err:
        return Verdict(None, Reason.MALFORMED_SIGNATURE, str(err))
    except Ed25519PublicKeyInvalidError:
        return Verdict(None, Reason.MALFORMED_SIGNATURE, "address is not a Stellar account id")
    got, address = record.binding, record.address
    checks = (
        (Reason.WRONG_RUN, "run-id", got.run_id, expected.run_id),
        (Reason.WRONG_ROUND, "server-round", got.server_round, expected.server_round),
        (Reason.WRONG_NONCE, "nonce", got.nonce, expected.nonce),
        (Reason.WRONG_INSTRUCTION, "instruction-id", got.instruction_id, expected.instruction_id),
        (Reason.WRONG_MESSAGE_TYPE, "message-type", got.message_type, expected.message_type),
        (Reason.WRONG_TERMS, "terms", got.terms.hex(), expected.terms.hex()),
    )
    for reason, key, value, want in checks:
        if value != want:
            # the node's value, bounded: a 1 MB instruction id must not become a 1 MB log line
            detail = f"{key} is {shown(value)}, expected {shown(want)}"
            # the digest under the binding the node claims: what it signed, if it is honest,
            # so a receipt for the rejection cites the very reply the node journaled
            return Verdict(address, reason, detail, reply_digest(content, got).hex())
    digest = reply_digest(content, expected)
    try:
        public.verify(digest, record.signature)
    except BadSignatureError:
        detail = "signature does not match the records"
        return Verdict(address, Reason.BAD_SIGNATURE, detail, digest.hex())
    return Verdict(address, digest=digest.hex())


def verify_reply(
    reply: Message,
    *,
    run_id: int,
    server_round: int,
    nonce: bytes,
    instruction_id: str | None = None,
    message_type: str | None = None,
    terms: bytes = b"",
) -> Verdict:
    """Verify a reply Message against the instruction the server sent.

    Parameters
    ----------
    reply : Message
        As received by the ServerApp.
    run_id, server_round, nonce : int, int, bytes
        What the server's challenge said.
    instruction_id : str, optional
        Defaults to the id the reply claims to answer (the SuperLink sets it).
    message_type : str, optional
        Defaults to the reply's own type.
    terms : bytes
        SHA-256 of the signed terms the server sent with the instruction (empty: none).
    """
    if reply.has_error():
        return Verdict(None, Reason.ERROR_REPLY, f"node replied with error {reply.error.code}")
    expected = Binding(
        run_id=run_id,
        server_round=server_round,
        nonce=nonce,
        instruction_id=instruction_id or reply.metadata.reply_to_message_id,
        message_type=message_type or reply.metadata.message_type,
        terms=terms,
    )
    if reply.metadata.run_id != run_id:
        return Verdict(None, Reason.WRONG_RUN, f"message run {reply.metadata.run_id}")
    return verify_content(reply.content, expected)
