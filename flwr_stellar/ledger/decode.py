"""Reading transactions back from any ledger: paging through an account's history and decoding
stored envelopes into payments, with stellar_sdk's raw XDR classes (no network passphrase
needed, nothing re-encoded)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from stellar_sdk import xdr as stellar_xdr

from flwr_stellar.ledger.base import ClaimableBalanceRecord, Ledger, Page, TxRecord
from flwr_stellar.ledger.embedded.ops.xdr_util import (
    account_id,
    asset_string,
    muxed_id,
    transaction_of,
)

PAGE = 200


T = TypeVar("T")


def iter_pages(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
    """Every record of a paged collection: ``fetch(cursor)`` returns the page after ``cursor``
    (of ``PAGE`` records); stops at a short page or a cursor that no longer moves."""
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from page.records
        if len(page.records) < PAGE or page.next_cursor in (None, cursor):
            return
        cursor = page.next_cursor


def iter_transactions(ledger: Ledger, account: str) -> Iterator[TxRecord]:
    """Every transaction of ``account``, oldest first, across pages.

    Parameters
    ----------
    ledger : Ledger
        Any backend.
    account : str
        ``G...`` strkey.
    """
    return iter_pages(
        lambda cursor: ledger.account_transactions(account, cursor=cursor, limit=PAGE, order="asc")
    )


CLAIM_MARGIN_S = 60  # a balance counted as claimable must stay so this long (a claim takes time)


def claimable_for(
    ledger: Ledger, claimant: str, asset: str | None = None, *, now: int | None = None
) -> list[ClaimableBalanceRecord]:
    """Every claimable balance ``claimant`` is named in (of ``asset`` when given), by id; with
    ``now`` (unix seconds), only those it may claim now and a minute from now: a balance it
    cannot claim (expired, not yet, a predicate that never holds, anyone's spam) is not its
    coin, and a claim of it would fail the whole collecting transaction.

    Parameters
    ----------
    ledger : Ledger
        Any backend.
    claimant : str
        ``G...`` strkey; it need not be an account yet.
    asset : str, optional
        ``CODE:ISSUER``.
    now : int, optional
        Keep only the balances ``claimant`` may claim at this time (and a minute later).
    """
    found = iter_pages(
        lambda cursor: ledger.claimable_balances(claimant=claimant, cursor=cursor, limit=PAGE)
    )
    return [
        b
        for b in found
        if (asset is None or b.asset == asset)
        and (
            now is None
            or (b.claimable_by(claimant, now) and b.claimable_by(claimant, now + CLAIM_MARGIN_S))
        )
    ]


PaymentOp = tuple[str, str, int]  # destination, asset, stroops


def decode_envelope(record: TxRecord) -> tuple[str, list[PaymentOp], list[str]]:
    """(transaction source, payments made by it, other operations) of a stored envelope.

    Payments come back as (destination, ``CODE:ISSUER`` or ``native``, stroops); so does a
    claimable balance its destination may claim at any time (first claimant, unconditional;
    a second claimant may only be the source itself, under ``not(before ...)``: it takes back
    what is never claimed). A no-op BumpSequence by the source (how a round without payouts
    is anchored) is skipped; anything else, including a claimable balance its destination
    might be unable to claim, is described in the third list.

    Parameters
    ----------
    record : TxRecord
        A transaction as the ledger returns it.
    """
    envelope = stellar_xdr.TransactionEnvelope.from_xdr(record.envelope_xdr)
    tx = transaction_of(envelope)
    if tx is None:
        return record.source, [], ["not a v1 transaction envelope"]
    source = muxed_id(tx.source_account)
    payments: list[PaymentOp] = []
    others: list[str] = []
    for op in tx.operations:
        op_source = muxed_id(op.source_account) if op.source_account is not None else source
        body = op.body
        if body.type == stellar_xdr.OperationType.PAYMENT and op_source == source:
            p = body.payment_op
            assert p is not None
            payments.append((muxed_id(p.destination), asset_string(p.asset), int(p.amount.int64)))
        elif body.type == stellar_xdr.OperationType.BUMP_SEQUENCE and op_source == source:
            continue  # the no-op that anchors a round without payouts
        elif (
            body.type == stellar_xdr.OperationType.CREATE_CLAIMABLE_BALANCE
            and op_source == source
            and (
                claim := _claimable_payout(
                    body.create_claimable_balance_op, source, record.created_at
                )
            )
        ):
            payments.append(claim)
        else:
            others.append(f"{body.type.name} from {op_source}")
    return source, payments, others


MIN_RECLAIM_S = 86_400  # a distributor's reclaim must wait at least a day to leave a payout


def _claimable_payout(
    op: stellar_xdr.CreateClaimableBalanceOp | None, source: str, created_at: int
) -> PaymentOp | None:
    """A claimable balance as a payment to its first claimant, when that claimant can claim it
    at any time: its predicate unconditional, and any other claimant the source itself, only
    after a delay of at least a day from the balance's creation (``not(before_relative_time)``
    of >= 1 day, or ``not(before_absolute_time)`` >= 1 day after ``created_at``): a reclaim
    allowed at once would let the operator take the payout back in the next ledger."""
    if op is None:
        return None
    claimants = [c.v0 for c in op.claimants if c.v0 is not None]
    if not 1 <= len(claimants) <= 2 or len(claimants) != len(op.claimants):
        return None
    kinds = stellar_xdr.ClaimPredicateType
    if claimants[0].predicate.type != kinds.CLAIM_PREDICATE_UNCONDITIONAL:
        return None
    if len(claimants) == 2:
        back = claimants[1]
        later = back.predicate.not_predicate
        if (
            account_id(back.destination) != source
            or back.predicate.type != kinds.CLAIM_PREDICATE_NOT
            or later is None
            or not _a_day_later(later, created_at)
        ):
            return None
    return (account_id(claimants[0].destination), asset_string(op.asset), int(op.amount.int64))


def _a_day_later(before: stellar_xdr.ClaimPredicate, created_at: int) -> bool:
    """Whether ``before`` (the predicate a reclaim negates) ends a day or more after creation."""
    kinds = stellar_xdr.ClaimPredicateType
    if before.type == kinds.CLAIM_PREDICATE_BEFORE_RELATIVE_TIME and before.rel_before is not None:
        return int(before.rel_before.int64) >= MIN_RECLAIM_S
    if before.type == kinds.CLAIM_PREDICATE_BEFORE_ABSOLUTE_TIME and before.abs_before is not None:
        return int(before.abs_before.int64) >= created_at + MIN_RECLAIM_S
    return False
