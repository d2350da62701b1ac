"""SQLite (WAL) persistence: entries, the hash-chained ledger headers, transactions, payments.

Each closed ledger is written in one SQLite transaction, so a crash (even SIGKILL) leaves
either the whole ledger or none of it. Entries are stored as JSON keyed by their ledger key.
"""

from __future__ import annotations

import json
import sqlite3
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flwr_stellar.ledger.embedded.entries import Entry, decode, encode

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries(
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, value TEXT NOT NULL,
    ledger INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS ledgers(
    seq INTEGER PRIMARY KEY, close_time INTEGER NOT NULL, prev_hash TEXT NOT NULL,
    tx_set_hash TEXT NOT NULL, hash TEXT NOT NULL, total_coins INTEGER NOT NULL,
    fee_pool INTEGER NOT NULL, base_fee INTEGER NOT NULL, base_reserve INTEGER NOT NULL,
    tx_count INTEGER NOT NULL, op_count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS txs(
    hash TEXT PRIMARY KEY, ledger INTEGER NOT NULL, idx INTEGER NOT NULL, source TEXT NOT NULL,
    fee_charged INTEGER NOT NULL, successful INTEGER NOT NULL, tx_code TEXT NOT NULL,
    op_codes TEXT NOT NULL, memo_type TEXT NOT NULL, memo TEXT, op_count INTEGER NOT NULL,
    envelope TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS txs_ledger ON txs(ledger, idx);
CREATE TABLE IF NOT EXISTS tx_accounts(
    account TEXT NOT NULL, ledger INTEGER NOT NULL, idx INTEGER NOT NULL, hash TEXT NOT NULL,
    PRIMARY KEY(account, ledger, idx));
CREATE TABLE IF NOT EXISTS payments(
    id TEXT NOT NULL, account TEXT NOT NULL, ledger INTEGER NOT NULL, idx INTEGER NOT NULL,
    op_index INTEGER NOT NULL, hash TEXT NOT NULL, type TEXT NOT NULL, source TEXT NOT NULL,
    destination TEXT NOT NULL, asset TEXT NOT NULL, amount INTEGER NOT NULL,
    PRIMARY KEY(account, id));
CREATE INDEX IF NOT EXISTS payments_account ON payments(account, ledger, idx, op_index);
CREATE TABLE IF NOT EXISTS fee_bumps(
    hash TEXT PRIMARY KEY, inner_hash TEXT NOT NULL, fee_account TEXT NOT NULL,
    inner_code TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS fee_bumps_inner ON fee_bumps(inner_hash);
"""

CACHE_ENTRIES = 100_000  # decoded entries kept in memory (bounded: memory stays flat)
HEADER_FIELDS = (
    "seq",
    "close_time",
    "prev_hash",
    "tx_set_hash",
    "hash",
    "total_coins",
    "fee_pool",
    "base_fee",
    "base_reserve",
    "tx_count",
    "op_count",
)


def _key_text(key: tuple[str, ...]) -> str:
    return "\x1f".join(key)


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL: survives process kills
        # fewer, larger checkpoints: hot entries are rewritten every ledger, so most WAL
        # pages are superseded before they are copied back
        self.db.execute("PRAGMA wal_autocheckpoint=20000")
        self.db.execute("PRAGMA cache_size=-65536")
        self.db.executescript(SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(entries)")}
        if "ledger" not in columns:  # a file from before entries kept their last ledger
            self.db.execute("ALTER TABLE entries ADD COLUMN ledger INTEGER NOT NULL DEFAULT 0")
        self._cache: OrderedDict[tuple[str, ...], Entry | None] = OrderedDict()
        self._data_version = -1
        self._pending: list[tuple[tuple[str, ...], Entry | None]] = []

    def close(self) -> None:
        self.db.close()

    # reading ----------------------------------------------------------------
    def _sync_cache(self) -> None:
        """Drop cached entries if another connection (process) has committed since."""
        version = self.db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._cache.clear()
            self._data_version = version

    def get(self, key: tuple[str, ...]) -> Entry | None:
        if not self.db.in_transaction:
            self._sync_cache()  # a read outside submit(): another process may have written
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        row = self.db.execute(
            "SELECT kind, value FROM entries WHERE key = ?", (_key_text(key),)
        ).fetchone()
        entry = decode(row[0], row[1]) if row else None
        self._remember(key, entry)
        return entry

    def _remember(self, key: tuple[str, ...], entry: Entry | None) -> None:
        self._cache[key] = entry
        if len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)

    def entries_with_prefix(self, kind: str, account_id: str) -> list[Entry]:
        prefix = _key_text((kind, account_id)) + "\x1f"
        rows = self.db.execute(
            "SELECT kind, value FROM entries WHERE key >= ? AND key < ? ORDER BY key",
            (prefix, prefix + "\U0010ffff"),
        ).fetchall()
        return [decode(k, v) for k, v in rows]

    def last_modified(self, key: tuple[str, ...]) -> int | None:
        """The ledger that last wrote an entry (Stellar's lastModifiedLedgerSeq); None if the
        entry does not exist, 0 if it was written before the store kept that."""
        row = self.db.execute(
            "SELECT ledger FROM entries WHERE key = ?", (_key_text(key),)
        ).fetchone()
        return int(row[0]) if row else None

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def last_header(self) -> dict[str, Any] | None:
        row = self.db.execute(
            f"SELECT {', '.join(HEADER_FIELDS)} FROM ledgers ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return dict(zip(HEADER_FIELDS, row, strict=True)) if row else None

    def header(self, seq: int) -> dict[str, Any] | None:
        row = self.db.execute(
            f"SELECT {', '.join(HEADER_FIELDS)} FROM ledgers WHERE seq = ?", (seq,)
        ).fetchone()
        return dict(zip(HEADER_FIELDS, row, strict=True)) if row else None

    def headers(self) -> Iterable[dict[str, Any]]:
        for row in self.db.execute(f"SELECT {', '.join(HEADER_FIELDS)} FROM ledgers ORDER BY seq"):
            yield dict(zip(HEADER_FIELDS, row, strict=True))

    # writing (inside begin() ... commit()) -----------------------------------
    def begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        self._sync_cache()
        self._pending = []

    def commit(self) -> None:
        self.db.execute("COMMIT")
        for key, entry in self._pending:  # only what is durable enters the cache
            self._remember(key, entry)
        self._pending = []

    def rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self._cache.clear()  # a read inside the aborted transaction may be stale
        self._pending = []

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def write_entries(
        self, changes: Iterable[tuple[tuple[str, ...], Entry | None]], ledger: int = 0
    ) -> None:
        """Put or delete entries, each put stamped with ``ledger`` (the one closing)."""
        puts, deletes = [], []
        for key, entry in changes:
            self._pending.append((key, entry))
            if entry is None:
                deletes.append((_key_text(key),))
            else:
                puts.append((_key_text(key), key[0], encode(entry), ledger))
        if puts:
            self.db.executemany(
                "INSERT OR REPLACE INTO entries(key, kind, value, ledger) VALUES (?, ?, ?, ?)",
                puts,
            )
        if deletes:
            self.db.executemany("DELETE FROM entries WHERE key = ?", deletes)

    def write_fee_bump(self, row: dict[str, Any]) -> None:
        """A fee bump's own fields (its fee account, its inner transaction)."""
        self.db.execute(
            "INSERT INTO fee_bumps(hash, inner_hash, fee_account, inner_code) VALUES (?, ?, ?, ?)",
            (row["hash"], row["inner_hash"], row["fee_account"], row["inner_code"]),
        )

    def fee_bump(self, tx_hash: str) -> tuple[str, str, str] | None:
        """(inner hash, fee account, inner code) of a fee bump, None for a plain transaction."""
        row = self.db.execute(
            "SELECT inner_hash, fee_account, inner_code FROM fee_bumps WHERE hash = ?", (tx_hash,)
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def outer_hash(self, inner_hash: str) -> str | None:
        """The fee bump that carried the transaction ``inner_hash``, if one did."""
        row = self.db.execute(
            "SELECT hash FROM fee_bumps WHERE inner_hash = ? LIMIT 1", (inner_hash,)
        ).fetchone()
        return row[0] if row else None

    def entries_of_kind(self, kind: str) -> list[Entry]:
        """Every entry of one kind (claimable balances: few, and never keyed by account)."""
        rows = self.db.execute(
            "SELECT kind, value FROM entries WHERE kind = ? ORDER BY key", (kind,)
        ).fetchall()
        return [decode(k, v) for k, v in rows]

    def write_header(self, header: dict[str, Any]) -> None:
        self.db.execute(
            f"INSERT INTO ledgers({', '.join(HEADER_FIELDS)}) VALUES "
            f"({', '.join('?' for _ in HEADER_FIELDS)})",
            tuple(header[f] for f in HEADER_FIELDS),
        )

    def write_tx(
        self, row: dict[str, Any], accounts: Iterable[str], payments: Iterable[tuple[Any, ...]]
    ) -> None:
        self.db.execute(
            "INSERT INTO txs(hash, ledger, idx, source, fee_charged, successful, tx_code, "
            "op_codes, memo_type, memo, op_count, envelope, created_at) VALUES "
            "(:hash, :ledger, :idx, :source, :fee_charged, :successful, :tx_code, :op_codes, "
            ":memo_type, :memo, :op_count, :envelope, :created_at)",
            row | {"op_codes": json.dumps(row["op_codes"])},
        )
        self.db.executemany(
            "INSERT OR IGNORE INTO tx_accounts(account, ledger, idx, hash) VALUES (?, ?, ?, ?)",
            [(a, row["ledger"], row["idx"], row["hash"]) for a in set(accounts)],
        )
        self.db.executemany(
            "INSERT INTO payments(id, account, ledger, idx, op_index, hash, type, source, "
            "destination, asset, amount) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            payments,
        )
