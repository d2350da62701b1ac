"""The outbox: a SQLite journal of the transactions the server intends to submit.

An entry is written (``pending``) before anything touches the ledger; the signed envelope and
its hash are journaled (``signed``) before submission; ``done`` / ``failed`` record the
outcome. After a crash, every ``signed`` entry is settled by asking the ledger for its hash:
found means it happened; not found and its sequence number already consumed (or the envelope
rejected as too late) means it never can, so it is rebuilt. A payment is thus made once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    manifest_hash TEXT NOT NULL,
    part INTEGER NOT NULL,
    server_round INTEGER NOT NULL,
    payments TEXT NOT NULL,          -- JSON [[destination, stroops], ...]; [] = anchor only
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','signed','done','failed')),
    envelope TEXT,
    tx_hash TEXT,
    sequence INTEGER,
    ledger INTEGER,
    codes TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    UNIQUE (manifest_hash, part)
);
"""


@dataclass(frozen=True)
class Entry:
    id: int
    manifest_hash: str
    part: int
    server_round: int
    payments: tuple[tuple[str, int], ...]
    state: str
    envelope: str | None
    tx_hash: str | None
    sequence: int | None
    ledger: int | None
    codes: str | None
    attempts: int


class Outbox:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a journaled intent survives power loss
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        with self._lock:
            self._db.execute(sql, args)

    def add(
        self, manifest_hash: str, server_round: int, parts: list[list[tuple[str, int]]]
    ) -> None:
        """Journal a round's transactions (idempotent: re-adding a manifest changes nothing)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for i, payments in enumerate(parts):
                    self._db.execute(
                        "INSERT OR IGNORE INTO entries"
                        " (manifest_hash, part, server_round, payments)"
                        " VALUES (?, ?, ?, ?)",
                        (manifest_hash, i, server_round, json.dumps(payments)),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def mark_signed(self, entry_id: int, envelope: str, tx_hash: str, sequence: int) -> None:
        self._write(
            "UPDATE entries SET state='signed', envelope=?, tx_hash=?, sequence=?,"
            " attempts=attempts+1 WHERE id=?",
            (envelope, tx_hash, sequence, entry_id),
        )

    def mark_done(self, entry_id: int, ledger: int | None) -> None:
        self._write("UPDATE entries SET state='done', ledger=? WHERE id=?", (ledger, entry_id))

    def mark_failed(self, entry_id: int, codes: str) -> None:
        self._write("UPDATE entries SET state='failed', codes=? WHERE id=?", (codes, entry_id))

    def reset(self, entry_id: int, codes: str) -> None:
        """The signed envelope can never apply: back to pending, to be rebuilt."""
        self._write(
            "UPDATE entries SET state='pending', envelope=NULL, tx_hash=NULL, sequence=NULL,"
            " codes=? WHERE id=?",
            (codes, entry_id),
        )

    def _select(self, where: str, args: tuple[object, ...] = ()) -> list[Entry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, manifest_hash, part, server_round, payments, state, envelope,"
                f" tx_hash, sequence, ledger, codes, attempts FROM entries {where} ORDER BY id",
                args,
            ).fetchall()
        return [
            Entry(
                id=row[0],
                manifest_hash=row[1],
                part=row[2],
                server_round=row[3],
                payments=tuple((str(d), int(a)) for d, a in json.loads(row[4])),
                state=row[5],
                envelope=row[6],
                tx_hash=row[7],
                sequence=row[8],
                ledger=row[9],
                codes=row[10],
                attempts=row[11],
            )
            for row in rows
        ]

    def unfinished(self) -> list[Entry]:
        return self._select("WHERE state IN ('pending', 'signed')")

    def entries(self, manifest_hash: str | None = None) -> list[Entry]:
        if manifest_hash is None:
            return self._select("")
        return self._select("WHERE manifest_hash = ?", (manifest_hash,))
