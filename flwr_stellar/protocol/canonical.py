"""Canonical JSON and the server-signed documents built on it (terms, receipts).

A document that two parties must agree on byte for byte (a manifest, the run's terms, a receipt)
is JSON with sorted keys, no whitespace, ASCII only and no floats (whose text form is not
canonical), so its SHA-256 names it and a signature over it means one thing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stellar_sdk import Keypair
from stellar_sdk.exceptions import BadSignatureError, Ed25519PublicKeyInvalidError

from flwr_stellar.protocol.errors import RecordError
from flwr_stellar.protocol.text import shown

SIGNATURE_BYTES = 64
DOCUMENT_LIMIT = 64 * 1024  # bytes of one signed document read from the other side


def canonical_json(doc: Any) -> bytes:
    """The canonical bytes of ``doc`` (TypeError for floats anywhere in it)."""
    _check_types(doc)
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _check_types(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError("canonical documents hold no floats (their text form is not canonical)")
    if isinstance(value, Mapping):
        for v in value.values():
            _check_types(v)
    elif isinstance(value, list | tuple):
        for v in value:
            _check_types(v)


def _message(domain: bytes, data: bytes) -> bytes:
    """What is signed: SHA-256 over the domain and the document, so a signature made for one
    kind of document (a receipt) can never be read as another (terms)."""
    return hashlib.sha256(len(domain).to_bytes(8, "big") + domain + data).digest()


@dataclass(frozen=True)
class SignedDocument:
    """Canonical JSON bytes and an ed25519 signature over them by one Stellar account.

    Parameters
    ----------
    data : bytes
        The canonical document; its SHA-256 (:attr:`digest`) names it.
    signature : bytes
        64 bytes over ``SHA-256(domain, data)``.
    """

    data: bytes
    signature: bytes

    @property
    def digest(self) -> str:
        """SHA-256 of the document (hex): how manifests, receipts and journals cite it."""
        return hashlib.sha256(self.data).hexdigest()

    @classmethod
    def sign(cls, doc: Mapping[str, Any], keypair: Keypair, domain: bytes) -> SignedDocument:
        """Encode ``doc`` canonically and sign it (the secret stays in ``keypair``)."""
        data = canonical_json(doc)
        return cls(data, keypair.sign(_message(domain, data)))

    def verify(self, signer: str, domain: bytes) -> dict[str, Any]:
        """The document, after checking it is canonical and signed by ``signer``.

        Raises
        ------
        RecordError
            Too long, not canonical JSON, or not signed by ``signer`` for ``domain``.
        """
        if not isinstance(self.data, bytes) or len(self.data) > DOCUMENT_LIMIT:
            raise RecordError(f"signed document is not bytes of at most {DOCUMENT_LIMIT}")
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_BYTES:
            raise RecordError(f"signature is not {SIGNATURE_BYTES} bytes")
        try:
            doc = json.loads(self.data)
            canonical = canonical_json(doc) == self.data
        except (ValueError, TypeError, RecursionError):
            canonical = False
        if not canonical or not isinstance(doc, dict):
            raise RecordError("signed document is not a canonical JSON object")
        try:
            Keypair.from_public_key(signer).verify(_message(domain, self.data), self.signature)
        except Ed25519PublicKeyInvalidError:
            raise RecordError(f"signer {signer[:60]!r} is not a Stellar account id") from None
        except BadSignatureError:
            raise RecordError(f"document is not signed by {signer}") from None
        return doc


def field_of(doc: Mapping[str, Any], key: str, typ: type, what: str) -> Any:
    """``doc[key]`` when it has exactly type ``typ`` (``True`` is not an int); RecordError
    naming ``what`` and the field otherwise."""
    value = doc.get(key)
    if type(value) is not typ:
        raise RecordError(f"{what} field {key!r} is missing or not a {typ.__name__}")
    return value


def hex64(value: str, what: str, *, empty: bool = False) -> str:
    """A SHA-256 in lower-case hex (or ``""`` when ``empty``); RecordError otherwise."""
    if empty and value == "":
        return value
    if len(value) != 64 or not set(value) <= set("0123456789abcdef"):
        raise RecordError(f"{what} is not a SHA-256 in hex")
    return value


def check_document(doc: Mapping[str, Any], fmt: str, fields: Iterable[str], what: str) -> None:
    """RecordError unless ``doc`` is of format ``fmt`` with exactly ``fields`` and ``format``:
    a signed document with a field more or less is not the document its reader knows."""
    if doc.get("format") != fmt:
        raise RecordError(f"unknown {what} format {shown(doc.get('format'))}")
    keys = {*fields, "format"}
    if set(doc) != keys:
        raise RecordError(f"{what} fields are {sorted(doc)}, expected {sorted(keys)}")
