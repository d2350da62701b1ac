"""Canonical digest of a reply's records, bound to its round; ed25519 sign / verify.

Digest v1 = SHA-256 over length-prefixed frames, in this order:

    domain "flwr-stellar/reply/v1"
    run id, server round, server nonce, instruction message id, message type
    for each record of the reply, sorted by record name (the signature record excluded):
        kind (A/M/C) and name, then
        ArrayRecord:  per array, in the record's own order: key, dtype, shape, stype,
                      byte length, then the raw bytes
        Metric/ConfigRecord: per item, sorted by key: key, type tag, exact value

One hasher sees every array byte once, straight from ``Array.data`` (no copies, no
re-serialisation), so hashing costs about one SHA-256 pass over the update. Floats are
encoded with ``float.hex`` (exact) and every value carries a type tag, so 1, 1.0, True and
"1" all differ. Record order in the reply does not matter; anything else does.
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from dataclasses import dataclass
from enum import StrEnum

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from stellar_sdk import Keypair
from stellar_sdk.exceptions import BadSignatureError, Ed25519PublicKeyInvalidError

DIGEST_VERSION = 1
DOMAIN = b"flwr-stellar/reply/v1"
SIGNATURE_RECORD = "flwr-stellar.signature"  # the reply's ConfigRecord carrying the signature
CHALLENGE_RECORD = "flwr-stellar.challenge"  # the instruction's ConfigRecord with the nonce


@dataclass(frozen=True)
class Binding:
    """What a reply is bound to, besides its records."""

    run_id: int
    server_round: int
    nonce: bytes
    instruction_id: str
    message_type: str


class _Framer:
    """Length-prefixed frames into one SHA-256, so no two field sequences collide."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()

    def frame(self, *parts: bytes) -> None:
        for part in parts:
            self.h.update(struct.pack(">Q", len(part)))
            self.h.update(part)

    def text(self, *parts: str) -> None:
        self.frame(*(p.encode() for p in parts))


def _scalar(value: object) -> tuple[bytes, bytes]:
    """(type tag, exact encoding) of one record value."""
    if isinstance(value, bool):
        return b"b", b"1" if value else b"0"
    if isinstance(value, int):
        return b"i", str(value).encode()
    if isinstance(value, float):
        return b"f", value.hex().encode()
    if isinstance(value, str):
        return b"s", value.encode()
    if isinstance(value, bytes):
        return b"y", value
    raise TypeError(f"cannot encode record value of type {type(value).__name__}")


def _items(f: _Framer, record: MetricRecord | ConfigRecord) -> None:
    for key in sorted(record.keys()):
        value = record[key]
        if isinstance(value, list):
            f.frame(key.encode(), b"l", str(len(value)).encode())
            for item in value:
                f.frame(*_scalar(item))
        else:
            f.frame(key.encode(), *_scalar(value))


def _frame_arrays(f: _Framer, record: ArrayRecord) -> None:
    for key, array in record.items():
        f.text(key, array.dtype, ",".join(map(str, array.shape)), array.stype)
        f.frame(array.data)


def array_record_hash(record: ArrayRecord) -> str:
    """SHA-256 (hex) of a model's names, dtypes, shapes and bytes: manifests cite models by it."""
    f = _Framer()
    f.frame(b"flwr-stellar/arrays/v1")
    _frame_arrays(f, record)
    return f.h.hexdigest()


def reply_digest(content: RecordDict, binding: Binding) -> bytes:
    f = _Framer()
    f.frame(DOMAIN)
    f.text(str(binding.run_id), str(binding.server_round))
    f.frame(binding.nonce)
    f.text(binding.instruction_id, binding.message_type)
    for name in sorted(content.keys()):
        if name == SIGNATURE_RECORD:
            continue
        record = content[name]
        if isinstance(record, ArrayRecord):
            f.text("A", name)
            _frame_arrays(f, record)
        elif isinstance(record, MetricRecord):
            f.text("M", name)
            _items(f, record)
        elif isinstance(record, ConfigRecord):
            f.text("C", name)
            _items(f, record)
        else:  # pragma: no cover - RecordDict admits only the three kinds
            raise TypeError(f"unknown record type {type(record).__name__}")
    return f.h.digest()


class Reason(StrEnum):
    """Why a reply was rejected; stable strings for manifests and metrics."""

    ERROR_REPLY = "error-reply"
    MISSING_SIGNATURE = "missing-signature"
    UNKNOWN_VERSION = "unknown-version"
    MALFORMED_SIGNATURE = "malformed-signature"
    WRONG_RUN = "wrong-run"
    WRONG_ROUND = "wrong-round"
    WRONG_NONCE = "wrong-nonce"
    WRONG_INSTRUCTION = "wrong-instruction"
    WRONG_MESSAGE_TYPE = "wrong-message-type"
    BAD_SIGNATURE = "bad-signature"


@dataclass(frozen=True)
class Verdict:
    pseudonym: str | None
    reason: Reason | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is None


def new_challenge(run_id: int, server_round: int) -> ConfigRecord:
    """The instruction-side record: a fresh 256-bit nonce for this round."""
    return ConfigRecord(
        {
            "version": DIGEST_VERSION,
            "run-id": str(run_id),
            "server-round": server_round,
            "nonce": secrets.token_bytes(32),
        }
    )


def sign_reply(content: RecordDict, binding: Binding, keypair: Keypair) -> None:
    """Add the signature record to ``content`` (in place)."""
    signature = keypair.sign(reply_digest(content, binding))
    content[SIGNATURE_RECORD] = ConfigRecord(
        {
            "version": DIGEST_VERSION,
            "address": keypair.public_key,
            "signature": signature,
            "run-id": str(binding.run_id),
            "server-round": binding.server_round,
            "nonce": binding.nonce,
            "instruction-id": binding.instruction_id,
            "message-type": binding.message_type,
        }
    )


def verify_content(content: RecordDict, expected: Binding) -> Verdict:
    """Check the signature record of ``content`` against what the server expects."""
    if SIGNATURE_RECORD not in content:
        return Verdict(None, Reason.MISSING_SIGNATURE, "reply carries no signature record")
    record = content[SIGNATURE_RECORD]
    if not isinstance(record, ConfigRecord):
        return Verdict(None, Reason.MALFORMED_SIGNATURE, "signature record is not a ConfigRecord")
    if record.get("version") != DIGEST_VERSION:
        return Verdict(None, Reason.UNKNOWN_VERSION, f"version {record.get('version')!r}")
    address, signature = record.get("address"), record.get("signature")
    if not isinstance(address, str) or not isinstance(signature, bytes) or len(signature) != 64:
        return Verdict(None, Reason.MALFORMED_SIGNATURE, "address or signature malformed")
    try:
        public = Keypair.from_public_key(address)
    except Ed25519PublicKeyInvalidError:
        return Verdict(None, Reason.MALFORMED_SIGNATURE, "address is not a Stellar account id")
    checks = (
        (Reason.WRONG_RUN, "run-id", str(expected.run_id)),
        (Reason.WRONG_ROUND, "server-round", expected.server_round),
        (Reason.WRONG_NONCE, "nonce", expected.nonce),
        (Reason.WRONG_INSTRUCTION, "instruction-id", expected.instruction_id),
        (Reason.WRONG_MESSAGE_TYPE, "message-type", expected.message_type),
    )
    for reason, key, want in checks:
        got = record.get(key)
        if got != want or type(got) is not type(want):
            return Verdict(address, reason, f"{key} is {got!r}, expected {want!r}")
    try:
        public.verify(reply_digest(content, expected), signature)
    except BadSignatureError:
        return Verdict(address, Reason.BAD_SIGNATURE, "signature does not match the records")
    return Verdict(address)


def verify_reply(
    reply: Message,
    *,
    run_id: int,
    server_round: int,
    nonce: bytes,
    instruction_id: str | None = None,
    message_type: str | None = None,
) -> Verdict:
    """Verify a reply Message; instruction id and type default to what it claims to answer."""
    if reply.has_error():
        return Verdict(None, Reason.ERROR_REPLY, f"node replied with error {reply.error.code}")
    expected = Binding(
        run_id=run_id,
        server_round=server_round,
        nonce=nonce,
        instruction_id=instruction_id or reply.metadata.reply_to_message_id,
        message_type=message_type or reply.metadata.message_type,
    )
    if reply.metadata.run_id != run_id:
        return Verdict(None, Reason.WRONG_RUN, f"message run {reply.metadata.run_id}")
    return verify_content(reply.content, expected)
