"""The Ledger protocol the rest of flwr-stellar uses, whatever the backend.

The embedded ledger, the Horizon-compatible server in front of it, and HorizonLedger (any
Horizon URL: a private network, testnet, pubnet) all speak it, so strategy code never knows
which one it talks to. Amounts are int64 stroops (1 XLM = 10,000,000 stroops) everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from flwr_stellar.ledger.amounts import STROOPS_PER_UNIT as STROOPS_PER_UNIT  # re-export

NATIVE = "native"


def asset_id(code: str | None, issuer: str | None) -> str:
    """``native`` or ``CODE:ISSUER`` (Horizon's canonical asset string)."""
    return NATIVE if code is None else f"{code}:{issuer}"


def asset_code_ok(code: str) -> bool:
    """Whether ``code`` is a Stellar asset code: 1 to 12 letters or digits.

    Checked where a code is configured, so a bad one fails at start-up naming the setting
    rather than at the first ``change_trust`` on the ledger.
    """
    return re.fullmatch(r"[A-Za-z0-9]{1,12}", code) is not None


@dataclass(frozen=True)
class Balance:
    asset: str  # "native" or "CODE:ISSUER"
    balance: int  # stroops
    limit: int | None = None  # trustlines only
    flags: int = 0  # trustline flags: 1 authorized, 2 maintain liabilities, 4 clawback


@dataclass(frozen=True)
class AccountInfo:
    account_id: str
    sequence: int
    balances: tuple[Balance, ...]
    thresholds: tuple[int, int, int]  # low, med, high
    master_weight: int
    signers: tuple[tuple[str, int], ...]  # (ed25519 account id, weight), master excluded
    flags: int
    num_subentries: int
    home_domain: str = ""
    data: tuple[tuple[str, bytes], ...] = ()
    num_sponsoring: int = 0
    num_sponsored: int = 0

    def balance(self, asset: str = NATIVE) -> int:
        return next((b.balance for b in self.balances if b.asset == asset), 0)


@dataclass(frozen=True)
class SubmitResult:
    """What a submission came to; ``applied`` tells charged (in a ledger) from rejected."""

    hash: str
    successful: bool
    applied: bool
    ledger: int | None
    fee_charged: int
    tx_code: str  # Horizon's string, e.g. "tx_success", "tx_bad_seq", "tx_failed"
    op_codes: tuple[str, ...] = ()  # e.g. ("op_success", "op_underfunded")
    envelope_xdr: str = ""
    result_xdr: str = ""
    inner_tx_code: str = ""  # a fee bump's inner transaction, e.g. "tx_success", "tx_bad_seq"


@dataclass(frozen=True)
class TxRecord:
    hash: str
    ledger: int
    source: str
    fee_charged: int
    successful: bool
    memo_type: str
    memo: str | None  # base64 for hash memos, text for text memos
    operation_count: int
    envelope_xdr: str
    created_at: int  # ledger close time, unix seconds
    tx_code: str = "tx_success"
    op_codes: tuple[str, ...] = ()
    paging_token: str = ""  # Horizon's cursor for this transaction
    fee_account: str = ""  # who paid the fee, when not the source (a fee bump)
    inner_hash: str = ""  # a fee bump's inner transaction hash
    inner_tx_code: str = ""  # a fee bump's inner result, e.g. "tx_success"

    @property
    def fee_payer(self) -> str:
        return self.fee_account or self.source


@dataclass(frozen=True)
class PaymentRecord:
    id: str  # "<ledger>-<tx index>-<op index>", sortable
    tx_hash: str
    ledger: int
    type: str  # "payment" | "create_account" | "clawback"
    source: str
    destination: str
    asset: str
    amount: int


def predicate_holds(predicate: Any, close_time: int) -> bool:
    """Whether a claim predicate is true in a ledger closing at ``close_time`` (unix s).

    Predicates are plain JSON values: ``{"unconditional": True}``, ``{"abs_before": unix}``,
    ``{"not": p}``, ``{"and": [p, q]}``, ``{"or": [p, q]}`` (relative times were made
    absolute when the balance was created, as stellar-core does).
    """
    if "unconditional" in predicate:
        return True
    if "abs_before" in predicate:
        return bool(close_time < int(predicate["abs_before"]))
    if "not" in predicate:
        return not predicate_holds(predicate["not"], close_time)
    if "and" in predicate:
        return all(predicate_holds(p, close_time) for p in predicate["and"])
    return any(predicate_holds(p, close_time) for p in predicate["or"])


@dataclass(frozen=True)
class ClaimableBalanceRecord:
    """A claimable balance waiting on the ledger (Horizon's ``/claimable_balances``)."""

    id: str  # Horizon's hex: "00000000" + sha256 of the creating operation's id
    asset: str
    amount: int  # stroops
    sponsor: str  # who pays its reserves, and gets them back when it is claimed
    claimants: tuple[tuple[str, Any], ...]  # (account, predicate)
    last_modified_ledger: int = 0
    paging_token: str = ""

    def claimable_by(self, account: str, close_time: int) -> bool:
        """Whether ``account`` may claim it in a ledger closing at ``close_time``."""
        return any(a == account and predicate_holds(p, close_time) for a, p in self.claimants)


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    records: tuple[T, ...]
    next_cursor: str | None = None


@dataclass
class LedgerError(Exception):
    """A request the ledger cannot serve (unknown account, bad input); not a tx failure."""

    message: str
    status: int = 400
    extras: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


class LedgerUnavailableError(LedgerError):
    """The ledger could not be reached or answered nonsense (connection refused, timeout, 5xx,
    malformed answer): the outcome of the request is unknown. Callers that submitted something
    must settle it by hash later, never resubmit a rebuilt transaction blindly."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=503)


class LedgerCongestedError(LedgerUnavailableError):
    """The network's ledgers are full: the transaction was not included (Horizon answers a
    congested network with a 504 timeout). Nothing was applied; the same envelope may be
    resubmitted, or rebuilt once it is dead (``tx_too_late``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.status = 504


class NotFoundError(LedgerError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=404)


class Ledger(Protocol):
    """What every backend offers; adding a backend means writing one class with these methods."""

    @property
    def network_passphrase(self) -> str: ...

    @property
    def location(self) -> str:
        """Where the ledger is (a file path or a URL), for logs and run records."""
        ...

    def close(self) -> None:
        """Release connections and files; idempotent."""
        ...

    def load_account(self, account_id: str) -> AccountInfo:
        """The account's current state.

        Parameters
        ----------
        account_id : str
            ``G...`` strkey.

        Raises
        ------
        NotFoundError
            The account does not exist (yet).
        """
        ...

    def submit(self, envelope_xdr: str) -> SubmitResult:
        """Submit one signed transaction envelope; a failed transaction is a result, not an
        exception (``applied`` tells charged failures from rejections).

        Parameters
        ----------
        envelope_xdr : str
            Base64 ``TransactionEnvelope`` XDR, signed for this ledger's network.
        """
        ...

    def transaction(self, tx_hash: str) -> TxRecord:
        """A transaction in the ledger by its hash (hex); NotFoundError if it is not there.

        Parameters
        ----------
        tx_hash : str
            64 hex characters.
        """
        ...

    def account_transactions(
        self,
        account_id: str,
        *,
        cursor: str | None = None,
        limit: int = 10,
        order: str = "asc",
    ) -> Page[TxRecord]:
        """One page of the transactions an account took part in.

        Parameters
        ----------
        account_id : str
            ``G...`` strkey.
        cursor : str, optional
            Paging token of the last record already seen.
        limit : int
            Records per page.
        order : {"asc", "desc"}
            Oldest or newest first.
        """
        ...

    def account_payments(
        self,
        account_id: str,
        *,
        cursor: str | None = None,
        limit: int = 10,
        order: str = "asc",
    ) -> Page[PaymentRecord]:
        """One page of payments (and account creations, clawbacks) to or from an account.

        Parameters
        ----------
        account_id, cursor, limit, order
            As for :meth:`account_transactions`.
        """
        ...

    def holders(
        self, asset: str, *, cursor: str | None = None, limit: int = 10
    ) -> Page[AccountInfo]:
        """Accounts holding a trustline to ``asset`` (Horizon's ``/accounts?asset=``), by id.

        Parameters
        ----------
        asset : str
            ``CODE:ISSUER``.
        cursor : str, optional
            The last account id already seen.
        limit : int
            Records per page.
        """
        ...

    def claimable_balances(
        self,
        *,
        claimant: str | None = None,
        sponsor: str | None = None,
        cursor: str | None = None,
        limit: int = 10,
    ) -> Page[ClaimableBalanceRecord]:
        """One page of the claimable balances one account may claim, or one sponsors.

        Parameters
        ----------
        claimant, sponsor : str, optional
            ``G...`` strkeys; at least one is given.
        cursor : str, optional
            Paging token of the last record already seen.
        limit : int
            Records per page.
        """
        ...

    def history_begins(self) -> int | None:
        """Close time (Unix seconds) of the oldest ledger whose transactions this backend can
        still find, by hash and in an account's history; None when it finds every transaction
        ever applied.

        Stellar RPC keeps a window of about seven days, and a Horizon may have been started
        from a recent ledger or prune its history. Before that time, "not found" does not mean
        "never applied", and the anchoring worker must not rebuild (and so pay twice) a
        transaction that may have applied there.
        """
        ...

    def fund(self, account_id: str) -> SubmitResult:
        """Create and fund ``account_id`` on a development network (friendbot).

        Parameters
        ----------
        account_id : str
            ``G...`` strkey of the account to create.
        """
        ...
