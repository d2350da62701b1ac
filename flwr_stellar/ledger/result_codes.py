"""Horizon's result code strings read back from a ``TransactionResult`` XDR.

Horizon sends a failed submission's codes as JSON (``extras.result_codes``); Stellar RPC sends
only the XDR (``errorResultXdr``, ``resultXdr``). Reading the XDR into the same strings is what
lets an RPC client report ``tx_bad_seq`` or ``op_underfunded`` exactly as a Horizon client
does, so the anchoring worker's decisions (dead, outbid, failed) never depend on the backend.
The spelling follows Horizon: the enum name without its prefix, lower case (``txBAD_SEQ`` ->
``tx_bad_seq``, ``PAYMENT_UNDERFUNDED`` -> ``op_underfunded``), with Horizon's few irregular
names taken from the encoder's own tables in :mod:`flwr_stellar.ledger.result_xdr`, so the two
directions cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stellar_sdk import xdr

from flwr_stellar.ledger.result_xdr import _ALIASES, _OUTER, _TX_ALIASES

_TX_NAMES = {code.name: name for name, code in _TX_ALIASES.items()}
_OP_OUTER = {code: name for name, code in _OUTER.items()}
_OP_ALIASES = {xdr_name: horizon for horizon, xdr_name in _ALIASES.items()}


@dataclass(frozen=True)
class ResultCodes:
    """What a ``TransactionResult`` says, in Horizon's words.

    Parameters
    ----------
    fee_charged : int
        Stroops charged (0 for a rejected transaction).
    tx_code : str
        e.g. ``tx_success``, ``tx_failed``, ``tx_bad_seq``, ``tx_fee_bump_inner_failed``.
    op_codes : tuple of str
        One per operation of a transaction that applied (``op_success``, ``op_underfunded``);
        empty for a rejected one.
    inner_tx_code : str
        A fee bump's inner transaction code (``""`` otherwise).
    inner_hash : str
        A fee bump's inner transaction hash, hex (``""`` otherwise).
    balance_ids : tuple of str
        Horizon ids (hex) of the claimable balances the transaction created, in order.
    """

    fee_charged: int
    tx_code: str
    op_codes: tuple[str, ...] = ()
    inner_tx_code: str = ""
    inner_hash: str = ""
    balance_ids: tuple[str, ...] = ()

    @property
    def successful(self) -> bool:
        return self.tx_code in ("tx_success", "tx_fee_bump_inner_success")


def tx_code_name(code: xdr.TransactionResultCode) -> str:
    """Horizon's string for a transaction result code (``txBAD_SEQ`` -> ``tx_bad_seq``)."""
    return _TX_NAMES.get(code.name, "tx_" + code.name.removeprefix("tx").lower())


def _prefix(enum: Any) -> str:
    """The prefix every member of a result code enum shares, up to its last underscore
    (``PAYMENT_``; ``MANAGE_SELL_OFFER_``, which CreatePassiveSellOffer's results use too)."""
    words = [name.split("_") for name in enum.__members__]
    shared = []
    for column in zip(*words, strict=False):
        if len(set(column)) != 1:
            break
        shared.append(column[0])
    return "".join(w + "_" for w in shared)


def op_code_name(result: xdr.OperationResult) -> str:
    """Horizon's string for one operation's result (``op_success``, ``op_no_trust``...)."""
    if result.code != xdr.OperationResultCode.opINNER:
        name: str | None = _OP_OUTER.get(result.code)
        return name or "op_" + str(result.code.name).removeprefix("op").lower()
    tr = result.tr
    if tr is None:
        raise ValueError("an opINNER operation result without its body")
    inner = next((v for k, v in vars(tr).items() if k != "type" and v is not None), None)
    if inner is None or not hasattr(inner, "code"):
        raise ValueError(f"an opINNER result of {tr.type.name} without a code")
    code = inner.code
    name = code.name.removeprefix(_prefix(type(code)))
    if name == "SUCCESS":
        return "op_success"
    spelled = "op_" + name.lower()
    return _OP_ALIASES.get(spelled, spelled)


def _balance_ids(results: list[xdr.OperationResult] | None) -> tuple[str, ...]:
    found = []
    for r in results or ():
        made = r.tr.create_claimable_balance_result if r.tr is not None else None
        if made is not None and made.balance_id is not None:
            found.append(made.balance_id.to_xdr_bytes().hex())
    return tuple(found)


def decode_result(result_xdr: str) -> ResultCodes:
    """Horizon's codes of a base64 ``TransactionResult``.

    Parameters
    ----------
    result_xdr : str
        ``sendTransaction``'s ``errorResultXdr`` or ``getTransaction``'s ``resultXdr``.

    Raises
    ------
    ValueError
        Not a ``TransactionResult`` (callers reading a server's answer report it as
        malformed).
    """
    if not result_xdr:
        raise ValueError("no result XDR")
    try:
        result = xdr.TransactionResult.from_xdr(result_xdr)
    except Exception as err:  # the XDR library raises assorted errors on garbage
        raise ValueError(f"unreadable TransactionResult XDR ({type(err).__name__})") from None
    body = result.result
    tx_code = tx_code_name(body.code)
    if body.inner_result_pair is not None:
        inner = body.inner_result_pair.result.result
        return ResultCodes(
            fee_charged=int(result.fee_charged.int64),
            tx_code=tx_code,
            op_codes=tuple(op_code_name(r) for r in inner.results or ()),
            inner_tx_code=tx_code_name(inner.code),
            inner_hash=body.inner_result_pair.transaction_hash.hash.hex(),
            balance_ids=_balance_ids(inner.results),
        )
    return ResultCodes(
        fee_charged=int(result.fee_charged.int64),
        tx_code=tx_code,
        op_codes=tuple(op_code_name(r) for r in body.results or ()),
        balance_ids=_balance_ids(body.results),
    )
