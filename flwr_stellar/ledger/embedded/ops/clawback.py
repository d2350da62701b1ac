"""Clawback: the issuer burns some of its asset from a clawback-enabled trustline."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from stellar_sdk.xdr import Operation

from flwr_stellar.ledger.embedded.entries import TRUSTLINE_CLAWBACK_ENABLED
from flwr_stellar.ledger.embedded.ops.xdr_util import asset_string, issuer_of, muxed_id
from flwr_stellar.ledger.embedded.state import Overlay

if TYPE_CHECKING:
    from flwr_stellar.ledger.embedded.ops import ApplyContext

THRESHOLD = "med"


def apply(op: Operation, source: str, st: Overlay, ctx: ApplyContext) -> str:
    body = op.body.clawback_op
    assert body is not None
    asset, holder, amount = asset_string(body.asset), muxed_id(body.from_), body.amount.int64
    if asset == "native" or issuer_of(asset) != source or holder == source or amount <= 0:
        return "op_malformed"
    line = st.trustline(holder, asset)
    if line is None:
        return "op_no_trust"
    if not line.flags & TRUSTLINE_CLAWBACK_ENABLED:
        return "op_not_clawback_enabled"
    if line.balance < amount:
        return "op_underfunded"
    st.put(replace(line, balance=line.balance - amount))
    ctx.record_payment("clawback", holder, source, asset, amount)
    return "op_success"
