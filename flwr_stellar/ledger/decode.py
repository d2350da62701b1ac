"""Reading transactions back from any ledger: paging through an account's history and decoding
stored envelopes into payments, with stellar_sdk's raw XDR classes (no network passphrase
needed, nothing re-encoded)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from stellar_sdk import xdr as stellar_xdr

from flwr_stellar.ledger.base import Ledger, Page, TxRecord
from flwr_stellar.ledger.embedded.ops.xdr_util import asset_string, muxed_id

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


PaymentOp = tuple[str, str, int]  # destination, asset, stroops


def decode_envelope(record: TxRecord) -> tuple[str, list[PaymentOp], list[str]]:
    """(transaction source, payments made by it, other operations) of a stored envelope.

    Payments come back as (destination, ``CODE:ISSUER`` or ``native``, stroops); a no-op
    BumpSequence by the source (how a round without payouts is anchored) is skipped; anything
    else is described in the third list.

    Parameters
    ----------
    record : TxRecord
        A transaction as the ledger returns it.
    """
    envelope = stellar_xdr.TransactionEnvelope.from_xdr(record.envelope_xdr)
    tx = envelope.v1.tx if envelope.v1 is not None else None
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
        else:
            others.append(f"{body.type.name} from {op_source}")
    return source, payments, others
