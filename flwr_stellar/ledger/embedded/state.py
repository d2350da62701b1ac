"""Nested views of ledger state: a transaction's changes sit in an overlay until it commits.

The fee and sequence number of a transaction go into one overlay; its operations into a
second one above it, which is dropped whole if any operation fails (all-or-nothing), while the
charge below stays (applied, failed and charged).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Protocol

from flwr_stellar.ledger.embedded.entries import Account, DataEntry, Entry, TrustLine, entry_key

Key = tuple[str, ...]
_DELETED = object()


class Reader(Protocol):
    def get(self, key: Key) -> Entry | None: ...


class Overlay:
    def __init__(self, parent: Reader) -> None:
        self.parent = parent
        self.changes: dict[Key, object] = {}

    def get(self, key: Key) -> Entry | None:
        if key in self.changes:
            value = self.changes[key]
            return None if value is _DELETED else value  # type: ignore[return-value]
        return self.parent.get(key)

    def put(self, entry: Entry) -> None:
        self.changes[entry_key(entry)] = entry

    def delete(self, key: Key) -> None:
        self.changes[key] = _DELETED

    def merge_into(self, other: Overlay) -> None:
        other.changes.update(self.changes)

    def items(self) -> Iterator[tuple[Key, Entry | None]]:
        for key, value in self.changes.items():
            yield key, None if value is _DELETED else value  # type: ignore[misc]

    # typed accessors -------------------------------------------------------
    def account(self, account_id: str) -> Account | None:
        return self.get(("acct", account_id))  # type: ignore[return-value]

    def trustline(self, account_id: str, asset: str) -> TrustLine | None:
        return self.get(("tl", account_id, asset))  # type: ignore[return-value]

    def data(self, account_id: str, name: str) -> DataEntry | None:
        return self.get(("data", account_id, name))  # type: ignore[return-value]

    def update_account(self, account_id: str, fn: Callable[[Account], Account]) -> Account:
        account = self.account(account_id)
        assert account is not None
        new = fn(account)
        self.put(new)
        return new

    def adjust_subentries(self, account_id: str, delta: int) -> None:
        self.update_account(
            account_id, lambda a: replace(a, num_subentries=a.num_subentries + delta)
        )
