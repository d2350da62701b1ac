"""TransactionResult XDR from what the ledger stores (fee charged, Horizon's result codes, the
envelope's operation types), built with stellar_sdk's XDR classes, so any client that decodes
``result_xdr`` gets the real fee and per-operation results.

Horizon's operation code strings are the XDR enum names without their operation prefix
(``PAYMENT_UNDERFUNDED`` -> ``op_underfunded``); this module maps them back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stellar_sdk import xdr

from flwr_stellar.ledger.base import SubmitResult, TxRecord

# operation type -> (result class, its code enum, enum prefix, OperationResultTr field)
_RESULTS: dict[xdr.OperationType, tuple[Any, Any, str, str]] = {
    xdr.OperationType.CREATE_ACCOUNT: (
        xdr.CreateAccountResult,
        xdr.CreateAccountResultCode,
        "CREATE_ACCOUNT_",
        "create_account_result",
    ),
    xdr.OperationType.PAYMENT: (
        xdr.PaymentResult,
        xdr.PaymentResultCode,
        "PAYMENT_",
        "payment_result",
    ),
    xdr.OperationType.SET_OPTIONS: (
        xdr.SetOptionsResult,
        xdr.SetOptionsResultCode,
        "SET_OPTIONS_",
        "set_options_result",
    ),
    xdr.OperationType.CHANGE_TRUST: (
        xdr.ChangeTrustResult,
        xdr.ChangeTrustResultCode,
        "CHANGE_TRUST_",
        "change_trust_result",
    ),
    xdr.OperationType.ALLOW_TRUST: (
        xdr.AllowTrustResult,
        xdr.AllowTrustResultCode,
        "ALLOW_TRUST_",
        "allow_trust_result",
    ),
    xdr.OperationType.ACCOUNT_MERGE: (
        xdr.AccountMergeResult,
        xdr.AccountMergeResultCode,
        "ACCOUNT_MERGE_",
        "account_merge_result",
    ),
    xdr.OperationType.MANAGE_DATA: (
        xdr.ManageDataResult,
        xdr.ManageDataResultCode,
        "MANAGE_DATA_",
        "manage_data_result",
    ),
    xdr.OperationType.BUMP_SEQUENCE: (
        xdr.BumpSequenceResult,
        xdr.BumpSequenceResultCode,
        "BUMP_SEQUENCE_",
        "bump_seq_result",
    ),
    xdr.OperationType.BEGIN_SPONSORING_FUTURE_RESERVES: (
        xdr.BeginSponsoringFutureReservesResult,
        xdr.BeginSponsoringFutureReservesResultCode,
        "BEGIN_SPONSORING_FUTURE_RESERVES_",
        "begin_sponsoring_future_reserves_result",
    ),
    xdr.OperationType.END_SPONSORING_FUTURE_RESERVES: (
        xdr.EndSponsoringFutureReservesResult,
        xdr.EndSponsoringFutureReservesResultCode,
        "END_SPONSORING_FUTURE_RESERVES_",
        "end_sponsoring_future_reserves_result",
    ),
    xdr.OperationType.REVOKE_SPONSORSHIP: (
        xdr.RevokeSponsorshipResult,
        xdr.RevokeSponsorshipResultCode,
        "REVOKE_SPONSORSHIP_",
        "revoke_sponsorship_result",
    ),
    xdr.OperationType.CLAWBACK: (
        xdr.ClawbackResult,
        xdr.ClawbackResultCode,
        "CLAWBACK_",
        "clawback_result",
    ),
    xdr.OperationType.SET_TRUST_LINE_FLAGS: (
        xdr.SetTrustLineFlagsResult,
        xdr.SetTrustLineFlagsResultCode,
        "SET_TRUST_LINE_FLAGS_",
        "set_trust_line_flags_result",
    ),
    xdr.OperationType.CREATE_CLAIMABLE_BALANCE: (
        xdr.CreateClaimableBalanceResult,
        xdr.CreateClaimableBalanceResultCode,
        "CREATE_CLAIMABLE_BALANCE_",
        "create_claimable_balance_result",
    ),
    xdr.OperationType.CLAIM_CLAIMABLE_BALANCE: (
        xdr.ClaimClaimableBalanceResult,
        xdr.ClaimClaimableBalanceResultCode,
        "CLAIM_CLAIMABLE_BALANCE_",
        "claim_claimable_balance_result",
    ),
}
# codes of the operation as a whole (OperationResultCode), not of its type
_OUTER = {
    "op_bad_auth": xdr.OperationResultCode.opBAD_AUTH,
    "op_no_source_account": xdr.OperationResultCode.opNO_ACCOUNT,
    "op_not_supported": xdr.OperationResultCode.opNOT_SUPPORTED,
    "op_too_many_subentries": xdr.OperationResultCode.opTOO_MANY_SUBENTRIES,
    "op_too_many_sponsoring": xdr.OperationResultCode.opTOO_MANY_SPONSORING,
}
# Horizon's strings that are not the enum name minus its prefix
_ALIASES = {"op_already_exists": "op_already_exist", "op_data_name_not_found": "op_name_not_found"}
# Horizon's transaction codes that are not the enum name minus "tx" (txNO_ACCOUNT)
_TX_ALIASES = {"tx_no_source_account": xdr.TransactionResultCode.txNO_ACCOUNT}


class ResultCodeError(ValueError):
    """A stored result code has no XDR counterpart for its operation type."""


def _inner(
    op_type: xdr.OperationType, code: str, merged: int | None, balance_id: str = ""
) -> xdr.OperationResult:
    if op_type not in _RESULTS:
        raise ResultCodeError(f"no result encoding for operation type {op_type.name}")
    result_cls, code_enum, prefix, field = _RESULTS[op_type]
    wanted = _ALIASES.get(code, code)
    member = next(
        (
            m
            for name, m in code_enum.__members__.items()
            if f"op_{name[len(prefix) :].lower()}" == wanted
        ),
        None,
    )
    if member is None:
        raise ResultCodeError(f"{code!r} is not a result of {op_type.name}")
    if op_type == xdr.OperationType.ACCOUNT_MERGE and member.name.endswith("SUCCESS"):
        value = result_cls(member, xdr.Int64(merged or 0))
    elif op_type == xdr.OperationType.CREATE_CLAIMABLE_BALANCE and member.name.endswith("SUCCESS"):
        if len(balance_id) != 72:
            raise ResultCodeError("a CreateClaimableBalance success needs the balance id")
        value = result_cls(member, xdr.ClaimableBalanceID.from_xdr_bytes(bytes.fromhex(balance_id)))
    else:
        value = result_cls(member)
    tr = xdr.OperationResultTr(type=op_type, **{field: value})
    return xdr.OperationResult(code=xdr.OperationResultCode.opINNER, tr=tr)


def build_result_xdr(
    envelope_xdr: str,
    fee_charged: int,
    tx_code: str,
    op_codes: tuple[str, ...] | list[str],
    merged_balance: Callable[[int], int | None] = lambda _: None,
    *,
    inner_hash: str = "",
    inner_code: str = "",
) -> str:
    """Base64 ``TransactionResult`` of a stored transaction.

    Parameters
    ----------
    envelope_xdr : str
        The transaction's base64 envelope (for its operation types).
    fee_charged : int
        Stroops charged (0 for a rejected transaction).
    tx_code : str
        Horizon's transaction code, e.g. ``tx_success``, ``tx_failed``, ``tx_bad_seq``,
        ``tx_fee_bump_inner_success``.
    op_codes : sequence of str
        One Horizon code per operation (applied transactions).
    merged_balance : callable, optional
        Operation index (1-based) -> the balance an AccountMerge moved.
    inner_hash, inner_code : str
        A fee bump's inner transaction: its hash (hex) and its own code (``tx_success``...).

    Raises
    ------
    ResultCodeError
        A code that has no XDR counterpart.
    """
    code = _tx_code(tx_code)
    envelope = xdr.TransactionEnvelope.from_xdr(envelope_xdr)
    if code in (
        xdr.TransactionResultCode.txFEE_BUMP_INNER_SUCCESS,
        xdr.TransactionResultCode.txFEE_BUMP_INNER_FAILED,
    ):
        if envelope.fee_bump is None or len(inner_hash) != 64:
            raise ResultCodeError(f"{tx_code} needs a fee bump envelope and its inner hash")
        inner = envelope.fee_bump.tx.inner_tx.v1
        assert inner is not None
        inner_tx_code = _tx_code(inner_code or "tx_failed")
        inner_result = xdr.InnerTransactionResult(
            fee_charged=xdr.Int64(0),  # the fee bump pays
            result=xdr.InnerTransactionResultResult(
                code=inner_tx_code,
                results=_op_results(inner.tx, inner_tx_code, op_codes, merged_balance),
            ),
            ext=xdr.InnerTransactionResultExt(0),
        )
        outer = xdr.TransactionResultResult(
            code=code,
            inner_result_pair=xdr.InnerTransactionResultPair(
                xdr.Hash(bytes.fromhex(inner_hash)), inner_result
            ),
        )
    else:
        if envelope.v1 is None:
            raise ResultCodeError("only v1 and fee bump transaction envelopes are supported")
        results = _op_results(envelope.v1.tx, code, op_codes, merged_balance)
        outer = xdr.TransactionResultResult(code=code, results=results)
    result = xdr.TransactionResult(
        fee_charged=xdr.Int64(fee_charged), result=outer, ext=xdr.TransactionResultExt(0)
    )
    return str(result.to_xdr())


def _tx_code(tx_code: str) -> xdr.TransactionResultCode:
    if tx_code in _TX_ALIASES:
        return _TX_ALIASES[tx_code]
    try:
        return xdr.TransactionResultCode["tx" + tx_code.removeprefix("tx_").upper()]
    except KeyError:
        raise ResultCodeError(f"unknown transaction code {tx_code!r}") from None


def _op_results(
    tx: xdr.Transaction,
    code: xdr.TransactionResultCode,
    op_codes: tuple[str, ...] | list[str],
    merged_balance: Callable[[int], int | None],
) -> list[xdr.OperationResult] | None:
    """The per-operation results of a transaction that applied (success or failed)."""
    if code not in (xdr.TransactionResultCode.txSUCCESS, xdr.TransactionResultCode.txFAILED):
        return None
    from flwr_stellar.ledger.embedded.ops.create_claimable_balance import balance_id
    from flwr_stellar.ledger.embedded.ops.xdr_util import muxed_id

    ops = tx.operations
    if len(op_codes) != len(ops):
        raise ResultCodeError(f"{len(op_codes)} operation codes for {len(ops)} operations")
    results = []
    for i, (op, op_code) in enumerate(zip(ops, op_codes, strict=True), start=1):
        if op_code in _OUTER:
            results.append(xdr.OperationResult(code=_OUTER[op_code]))
            continue
        merged = merged_balance(i) if op.body.type == xdr.OperationType.ACCOUNT_MERGE else None
        made = ""
        if op.body.type == xdr.OperationType.CREATE_CLAIMABLE_BALANCE:
            made = balance_id(muxed_id(tx.source_account), tx.seq_num.sequence_number.int64, i - 1)
        results.append(_inner(op.body.type, op_code, merged, made))
    return results


def stored_result_xdr(t: TxRecord, moved_amount: Callable[[int], int | None]) -> str:
    """Base64 ``TransactionResult`` of a transaction the ledger applied (in a ledger).

    One place for what Horizon's ``result_xdr`` and Stellar RPC's ``resultXdr`` both carry.

    Parameters
    ----------
    t : TxRecord
        The stored transaction: envelope, fee charged, codes, fee bump fields.
    moved_amount : callable
        Operation id (TOID) -> what it moved (the ledger's ``moved_amount``), for the balance
        an AccountMerge result names.

    Raises
    ------
    ResultCodeError
        A stored code has no XDR counterpart.
    """
    return build_result_xdr(
        t.envelope_xdr,
        t.fee_charged,
        t.tx_code,
        t.op_codes,
        lambda i: moved_amount(int(t.paging_token) | i),
        inner_hash=t.inner_hash,
        inner_code=t.inner_tx_code,
    )


def rejected_result_xdr(result: SubmitResult, inner_hash: str = "") -> str:
    """Base64 ``TransactionResult`` of a submission the ledger rejected (nothing charged).

    Horizon puts it in a failed submission's ``extras.result_xdr``, Stellar RPC in
    ``sendTransaction``'s ``errorResultXdr``.

    Parameters
    ----------
    result : SubmitResult
        The rejection (``applied`` false), with its envelope.
    inner_hash : str
        A fee bump's inner transaction hash (hex), needed when its inner code is set.

    Raises
    ------
    ResultCodeError
        A code that has no XDR counterpart.
    """
    return build_result_xdr(
        result.envelope_xdr,
        0,
        result.tx_code,
        result.op_codes,
        inner_hash=inner_hash if result.inner_tx_code else "",
        inner_code=result.inner_tx_code,
    )
