"""Payment of XLM or a credit asset; issuers mint and burn their own asset without trustlines."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from stellar_sdk.xdr import Operation

from flwr_stellar.ledger.base import NATIVE
from flwr_stellar.ledger.embedded.entries import INT64_MAX
from flwr_stellar.ledger.embedded.ops.xdr_util import (
    asset_string,
    asset_valid,
    issuer_of,
    muxed_id,
)
from flwr_stellar.ledger.embedded.state import Overlay

if TYPE_CHECKING:
    from flwr_stellar.ledger.embedded.ops import ApplyContext

THRESHOLD = "med"


def apply(op: Operation, source: str, st: Overlay, ctx: ApplyContext) -> str:
    body = op.body.payment_op
    assert body is not None
    destination, amount, asset = (
        muxed_id(body.destination),
        body.amount.int64,
        asset_string(body.asset),
    )
    if amount <= 0 or not asset_valid(body.asset):
        return "op_malformed"
    code = (
        _native(source, destination, amount, st, ctx)
        if asset == NATIVE
        else _credit(source, destination, asset, amount, st)
    )
    if code == "op_success":
        ctx.record_payment("payment", source, destination, asset, amount)
    return code


def _native(source: str, destination: str, amount: int, st: Overlay, ctx: ApplyContext) -> str:
    dst = st.account(destination)
    if dst is None:
        return "op_no_destination"
    src = st.account(source)
    assert src is not None
    if src.available(ctx.base_reserve) < amount:
        return "op_underfunded"
    if source == destination:
        return "op_success"
    if dst.balance > INT64_MAX - amount:
        return "op_line_full"
    st.put(replace(src, balance=src.balance - amount))
    dst = st.account(destination)
    assert dst is not None
    st.put(replace(dst, balance=dst.balance + amount))
    return "op_success"


def _credit(source: str, destination: str, asset: str, amount: int, st: Overlay) -> str:
    issuer = issuer_of(asset)
    if st.account(destination) is None:
        return "op_no_destination"
    if source != issuer:
        line = st.trustline(source, asset)
        if line is None:
            return "op_src_no_trust"
        if not line.authorized:
            return "op_src_not_authorized"
        if line.balance < amount:
            return "op_underfunded"
    if destination != issuer:
        dline = st.trustline(destination, asset)
        if dline is None:
            return "op_no_trust"
        if not dline.authorized:
            return "op_not_authorized"
        if dline.balance > dline.limit - amount and source != destination:
            return "op_line_full"
    if source == destination:
        return "op_success"
    if source != issuer:
        line = st.trustline(source, asset)
        assert line is not None
        st.put(replace(line, balance=line.balance - amount))
    if destination != issuer:
        dline = st.trustline(destination, asset)
        assert dline is not None
        st.put(replace(dline, balance=dline.balance + amount))
    return "op_success"
