"""A run's signed terms on disk, beside its manifests: ``RUN_DIR/terms/<sha256>.json`` (the
canonical document, named by its hash like a manifest) and ``<sha256>.sig`` (the distributor's
signature in hex)."""

from __future__ import annotations

from pathlib import Path

from flwr_stellar.files import write_atomic
from flwr_stellar.protocol.canonical import SignedDocument
from flwr_stellar.protocol.errors import RecordError
from flwr_stellar.protocol.terms import SignedTerms

TERMS_DIR = "terms"


def save_terms(run_dir: Path, signed: SignedTerms) -> Path:
    """Write the signed terms into ``run_dir/terms/``; return the document's path."""
    folder = run_dir / TERMS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{signed.digest}.json"
    write_atomic(path, signed.signed.data)
    write_atomic(path.with_suffix(".sig"), signed.signed.signature.hex().encode() + b"\n")
    return path


def load_terms(run_dir: Path, digest: str) -> SignedTerms:
    """The signed terms a run's manifests name, verified; RecordError saying what is wrong."""
    if (
        not isinstance(digest, str)
        or len(digest) != 64
        or not set(digest) <= set("0123456789abcdef")
    ):
        raise RecordError(f"manifests name terms {digest!r}, not a SHA-256")
    path = run_dir / TERMS_DIR / f"{digest}.json"
    try:
        data = path.read_bytes()
        signature = bytes.fromhex(path.with_suffix(".sig").read_text().strip())
    except FileNotFoundError as err:
        raise RecordError(f"{err.filename} is missing") from None
    except ValueError:
        raise RecordError(f"{path.with_suffix('.sig')} is not a hex signature") from None
    signed = SignedTerms.from_signed(SignedDocument(data, signature))
    if signed.digest != digest:
        raise RecordError(f"{path} does not hash to its name")
    return signed
