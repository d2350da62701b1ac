"""Ledger entries (immutable; updated with dataclasses.replace) and Stellar's reserve rules."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

BASE_FEE = 100  # stroops per operation
BASE_RESERVE = 5_000_000  # 0.5 XLM
MAX_SIGNERS = 20
INT64_MAX = 2**63 - 1

# account flags
AUTH_REQUIRED, AUTH_REVOCABLE, AUTH_IMMUTABLE, AUTH_CLAWBACK_ENABLED = 1, 2, 4, 8
ACCOUNT_FLAGS = AUTH_REQUIRED | AUTH_REVOCABLE | AUTH_IMMUTABLE | AUTH_CLAWBACK_ENABLED
# trustline flags
AUTHORIZED, AUTHORIZED_TO_MAINTAIN_LIABILITIES, TRUSTLINE_CLAWBACK_ENABLED = 1, 2, 4


@dataclass(frozen=True)
class Account:
    account_id: str
    balance: int
    seq_num: int
    num_subentries: int = 0
    flags: int = 0
    home_domain: str = ""
    master_weight: int = 1
    low: int = 0
    med: int = 0
    high: int = 0
    signers: tuple[tuple[str, int], ...] = ()
    num_sponsoring: int = 0
    num_sponsored: int = 0
    sponsor: str | None = None  # who pays this account's 2 base reserves, if anyone

    def min_balance(self, base_reserve: int = BASE_RESERVE) -> int:
        return (2 + self.num_subentries + self.num_sponsoring - self.num_sponsored) * base_reserve

    def available(self, base_reserve: int = BASE_RESERVE) -> int:
        return self.balance - self.min_balance(base_reserve)

    def weight_of(self, signer: str) -> int:
        if signer == self.account_id:
            return self.master_weight
        return next((w for s, w in self.signers if s == signer), 0)


@dataclass(frozen=True)
class TrustLine:
    account_id: str
    asset: str  # CODE:ISSUER
    balance: int
    limit: int
    flags: int
    sponsor: str | None = None

    @property
    def authorized(self) -> bool:
        return bool(self.flags & AUTHORIZED)


@dataclass(frozen=True)
class DataEntry:
    account_id: str
    name: str
    value: bytes = field(repr=False)
    sponsor: str | None = None


@dataclass(frozen=True)
class ClaimableBalance:
    """A CreateClaimableBalance's coins, waiting for one of its claimants.

    ``balance_id`` is Horizon's hex of the ClaimableBalanceID XDR (``00000000`` + sha256);
    each claimant is (account, predicate) with predicates as plain JSON values whose relative
    times were made absolute when the balance was created (see ``ops.predicates``). The entry
    costs one base reserve per claimant, paid by ``sponsor``.
    """

    balance_id: str
    asset: str
    amount: int
    claimants: tuple[tuple[str, Any], ...]
    sponsor: str
    created_ledger: int = 0


Entry = Account | TrustLine | DataEntry | ClaimableBalance


def entry_key(entry: Entry) -> tuple[str, ...]:
    if isinstance(entry, Account):
        return ("acct", entry.account_id)
    if isinstance(entry, TrustLine):
        return ("tl", entry.account_id, entry.asset)
    if isinstance(entry, ClaimableBalance):
        return ("cb", entry.balance_id)
    return ("data", entry.account_id, entry.name)


def encode(entry: Entry) -> str:
    d: dict[str, Any] = dict(entry.__dict__)  # flat fields: much cheaper than asdict()
    if isinstance(entry, DataEntry):
        d["value"] = entry.value.hex()
    return json.dumps(d, separators=(",", ":"))


def decode(kind: str, text: str) -> Entry:
    d = json.loads(text)
    if kind == "acct":
        d["signers"] = tuple(tuple(s) for s in d["signers"])
        return Account(**d)
    if kind == "tl":
        return TrustLine(**d)
    if kind == "cb":
        d["claimants"] = tuple((c[0], c[1]) for c in d["claimants"])
        return ClaimableBalance(**d)
    d["value"] = bytes.fromhex(d["value"])
    return DataEntry(**d)
