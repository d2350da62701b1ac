"""Reading transactions back from any ledger: paging through an account's history and decoding
stored envelopes into payments, with stellar_sdk's raw XDR classes (no network passphrase
needed, nothing re-encoded)."""

from __future__ import annotations

from collections.abc import Iterable

from stellar_sdk import xdr as stellar_xdr
from stellar_sdk.strkey import StrKey

from flwr_stellar.ledger.base import Ledger, TxRecord

PAGE = 200


def iter_transactions(ledger: Ledger, account: str) -> Iterable[TxRecord]:
    """Every transaction of ``account``, oldest first, across pages.

    Parameters
    ----------
    ledger : Ledger
        Any backend.
    account : str
        ``G...`` strkey.
    """
    cursor: str | None = None
    while True:
        page = ledger.account_transactions(account, cursor=cursor, limit=PAGE, order="asc")
        yield from page.records
        if len(page.records) < PAGE or page.next_cursor in (None, cursor):
            return
        cursor = page.next_cursor


def asset_string(asset: stellar_xdr.Asset) -> str:
    if asset.type == stellar_xdr.AssetType.ASSET_TYPE_NATIVE:
        return "native"
    alpha = asset.alpha_num4 or asset.alpha_num12
    assert alpha is not None
    code_holder = alpha.asset_code
    raw: bytes = (
        getattr(code_holder, "asset_code4", None)
        or getattr(code_holder, "asset_code12", None)
        or b""
    )
    issuer = alpha.issuer.account_id.ed25519
    assert issuer is not None
    code = raw.rstrip(b"\0").decode("ascii", "replace")
    return f"{code}:{StrKey.encode_ed25519_public_key(issuer.uint256)}"


def account_of(muxed: stellar_xdr.MuxedAccount) -> str:
    if muxed.ed25519 is not None:
        return StrKey.encode_ed25519_public_key(muxed.ed25519.uint256)
    assert muxed.med25519 is not None
    return StrKey.encode_ed25519_public_key(muxed.med25519.ed25519.uint256)


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
    source = account_of(tx.source_account)
    payments: list[PaymentOp] = []
    others: list[str] = []
    for op in tx.operations:
        op_source = account_of(op.source_account) if op.source_account is not None else source
        body = op.body
        if body.type == stellar_xdr.OperationType.PAYMENT and op_source == source:
            p = body.payment_op
            assert p is not None
            payments.append((account_of(p.destination), asset_string(p.asset), int(p.amount.int64)))
        elif body.type == stellar_xdr.OperationType.BUMP_SEQUENCE and op_source == source:
            continue  # the no-op that anchors a round without payouts
        else:
            others.append(f"{body.type.name} from {op_source}")
    return source, payments, others
