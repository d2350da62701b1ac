"""The node's journal: what it signed and sent, the terms it accepted, every receipt it got.

It lives beside the node's keystore (``keystore.json`` -> ``keystore.journal``, a development
``node-0.json`` -> ``node-0.journal``), holds nothing secret (pseudonyms, digests, signatures,
the server's signed documents) and is the node's evidence: ``flwr-stellar node check`` holds it
against the ledger, ``flwr-stellar audit --evidence`` against the run's manifests.

Format: one JSON line per entry, ``{"entry": {...}, "sha256": <hash of the entry>}``. Entries
are only ever appended (``O_APPEND``, one ``write``, ``fsync``), under an exclusive ``flock``
so that two processes of one node never interleave, and an entry already present is not
written again, so a node that retries after a crash duplicates nothing. A SIGKILL in the middle
of a write leaves at most one torn last line: readers skip a line whose hash does not match,
and the next append starts on a fresh line. The file is created with mode 0600.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flwr_stellar.protocol.canonical import SignedDocument, canonical_json

SUFFIX = ".journal"
TERMS, SENT, RECEIPT = "terms", "sent", "receipt"
COLLECT = "collect"  # the wallet's transactions moving a run's earnings (flwr_stellar.wallet)
LINE_LIMIT = 256 * 1024  # a longer line is not ours


def journal_path(keystore: Path) -> Path:
    """Where the journal of the node with this keystore lives."""
    return keystore.with_suffix(SUFFIX)


def _key(entry: Mapping[str, Any]) -> tuple[object, ...]:
    """What makes two entries the same event (written once, however often it is retried)."""
    kind = entry.get("kind")
    if kind == SENT:
        return (SENT, entry.get("run_id"), entry.get("server_round"), entry.get("digest"))
    if kind == COLLECT:
        return (COLLECT, entry.get("run_id"), entry.get("tx_hash"), entry.get("state"))
    return (kind, entry.get("run_id"), entry.get("document"))


@dataclass(frozen=True)
class Journal:
    """One node's journal file.

    Parameters
    ----------
    path : Path
        The file (created on the first append).
    """

    path: Path

    @classmethod
    def beside(cls, keystore: Path) -> Journal:
        return cls(journal_path(keystore))

    # ------------------------------------------------------------------ reading
    def scan(self) -> tuple[list[dict[str, Any]], int]:
        """(every sound entry in order, first occurrence only; lines skipped as damaged)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return [], 0
        try:
            parsed, _ = _refresh(self.path, fd)
            return list(parsed.entries), parsed.damaged
        finally:
            os.close(fd)

    def entries(self, run_id: int | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        """The sound entries, optionally of one run and kind."""
        found, _ = self.scan()
        return [
            e
            for e in found
            if (run_id is None or e.get("run_id") == run_id) and (kind is None or e["kind"] == kind)
        ]

    def runs(self) -> list[int]:
        return sorted({e["run_id"] for e in self.entries() if isinstance(e.get("run_id"), int)})

    def terms(self, run_id: int) -> SignedDocument | None:
        """The signed terms this node accepted for the run (the first: they cannot change)."""
        for entry in self.entries(run_id, TERMS):
            return signed_of(entry)
        return None

    def receipts(self, run_id: int) -> list[SignedDocument]:
        return [signed_of(e) for e in self.entries(run_id, RECEIPT)]

    # ------------------------------------------------------------------ writing
    def append(self, *entries: Mapping[str, Any]) -> int:
        """Append the entries not already in the journal; return how many were written."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked() as fd:
            parsed, torn = _refresh(self.path, fd)  # torn: a write a crash cut short
            keys = set(parsed.keys)
            lines = []
            for entry in entries:
                doc = dict(entry)
                if _key(doc) in keys:
                    continue
                keys.add(_key(doc))
                body = canonical_json(doc)
                digest = hashlib.sha256(body).hexdigest()
                lines.append(b'{"entry":' + body + b',"sha256":"' + digest.encode() + b'"}\n')
            if not lines:
                return 0
            os.write(fd, (b"\n" if torn else b"") + b"".join(lines))
            os.fsync(fd)
            return len(lines)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # releases the lock


@dataclass
class _Parsed:
    """What one process has read of a journal so far (journals only grow: each read parses
    only the lines appended since, so a node's instruction costs the same in its 1,000th run)."""

    identity: tuple[int, int]  # (device, inode): a replaced file is read afresh
    offset: int = 0  # bytes of complete lines consumed
    entries: list[dict[str, Any]] = field(default_factory=list)
    keys: set[tuple[object, ...]] = field(default_factory=set)
    damaged: int = 0


_PARSED: dict[str, _Parsed] = {}
_PARSED_LOCK = threading.Lock()


def _refresh(path: Path, fd: int) -> tuple[_Parsed, bool]:
    """The journal's entries, reading only what was appended since the last call; and whether
    the file ends in a line a crash cut short (left unread until the next append ends it)."""
    st = os.fstat(fd)
    identity = (st.st_dev, st.st_ino)
    key = str(path.resolve())
    with _PARSED_LOCK:
        parsed = _PARSED.get(key)
        if parsed is None or parsed.identity != identity or st.st_size < parsed.offset:
            parsed = _Parsed(identity)
        chunks = []
        at = parsed.offset
        while at < st.st_size:
            chunk = os.pread(fd, min(1 << 20, st.st_size - at), at)
            if not chunk:
                break
            chunks.append(chunk)
            at += len(chunk)
        data = b"".join(chunks)
        end = data.rfind(b"\n") + 1
        for line in data[:end].split(b"\n"):
            if not line:
                continue
            entry = _sound(line)
            if entry is None:
                parsed.damaged += 1
            elif _key(entry) not in parsed.keys:
                parsed.keys.add(_key(entry))
                parsed.entries.append(entry)
        parsed.offset += end
        _PARSED[key] = parsed
        return parsed, end < len(data)


def _sound(line: bytes) -> dict[str, Any] | None:
    if len(line) > LINE_LIMIT:
        return None
    try:
        doc = json.loads(line)
        entry, digest = doc["entry"], doc["sha256"]
        body = canonical_json(entry)
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    if not isinstance(entry, dict) or hashlib.sha256(body).hexdigest() != digest:
        return None
    kind = entry.get("kind")
    if kind not in (TERMS, SENT, RECEIPT, COLLECT) or type(entry.get("run_id")) is not int:
        return None
    if not all(type(v) in (str, int, bool) for v in entry.values()):
        return None  # fields are scalars: a hand-made entry must not break the readers
    texts = {
        SENT: ("pseudonym", "digest", "signature"),
        COLLECT: ("pseudonym", "tx_hash", "envelope", "state", "step"),
    }.get(kind, ("document", "signature"))
    if not all(isinstance(entry.get(k), str) for k in texts):
        return None
    if entry["kind"] == SENT and type(entry.get("server_round")) is not int:
        return None
    return entry


def signed_entry(kind: str, run_id: int, signed: SignedDocument, **extra: Any) -> dict[str, Any]:
    """A journal entry holding a server-signed document (terms or a receipt)."""
    return {
        "kind": kind,
        "run_id": run_id,
        "document": signed.data.decode("ascii"),
        "signature": signed.signature.hex(),
        **extra,
    }


def signed_of(entry: Mapping[str, Any]) -> SignedDocument:
    """The signed document of a terms or receipt entry (verified by whoever reads it)."""
    return SignedDocument(
        str(entry["document"]).encode("ascii", "replace"),
        bytes.fromhex(str(entry["signature"])) if _is_hex(entry.get("signature")) else b"",
    )


def _is_hex(value: object) -> bool:
    return isinstance(value, str) and len(value) % 2 == 0 and set(value) <= set("0123456789abcdef")
