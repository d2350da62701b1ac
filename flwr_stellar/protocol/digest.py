"""Canonical digest of a reply's records, bound to its run, round, nonce and instruction.

Digest v2 = SHA-256 over length-prefixed frames, in this order:

    domain "flwr-stellar/reply/v2"
    run id, server round, server nonce, instruction message id, message type,
    the SHA-256 of the run's signed terms (empty when the server sent none)
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
import struct
from dataclasses import dataclass

from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict

DIGEST_VERSION = 2  # v2: binds the hash of the run's signed terms
DOMAIN = b"flwr-stellar/reply/v2"
SIGNATURE_RECORD = "flwr-stellar.signature"  # the reply's ConfigRecord carrying the signature


@dataclass(frozen=True)
class Binding:
    """What a reply is bound to, besides its records: the instruction it answers.

    Parameters
    ----------
    run_id : int
        Flower run id.
    server_round : int
        The round of the instruction.
    nonce : bytes
        The server's fresh 32-byte challenge (empty when the instruction carried none).
    instruction_id : str
        Flower message id of the instruction.
    message_type : str
        ``train`` or ``evaluate``.
    terms : bytes
        SHA-256 of the run's signed terms the node accepted (empty when the server sent none):
        a reply is an answer under those terms and no others.
    """

    run_id: int
    server_round: int
    nonce: bytes
    instruction_id: str
    message_type: str
    terms: bytes = b""


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
    """The 32 bytes a node signs: its reply's records (minus the signature) and the binding.

    Parameters
    ----------
    content : RecordDict
        The reply's records; the signature record, if present, is left out.
    binding : Binding
        Run, round, nonce, instruction id and message type the reply answers.
    """
    f = _Framer()
    f.frame(DOMAIN)
    f.text(str(binding.run_id), str(binding.server_round))
    f.frame(binding.nonce)
    f.text(binding.instruction_id, binding.message_type)
    f.frame(binding.terms)
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
