"""Begin/EndSponsoringFutureReserves: the sandwich in which a sponsor pays new reserves."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stellar_sdk.xdr import Operation

from flwr_stellar.ledger.embedded.ops.xdr_util import account_id
from flwr_stellar.ledger.embedded.state import Overlay

if TYPE_CHECKING:
    from flwr_stellar.ledger.embedded.ops import ApplyContext

THRESHOLD = "med"


def apply_begin(op: Operation, source: str, st: Overlay, ctx: ApplyContext) -> str:
    body = op.body.begin_sponsoring_future_reserves_op
    assert body is not None
    sponsored = account_id(body.sponsored_id)
    if sponsored == source:
        return "op_malformed"
    if sponsored in ctx.sponsoring:
        return "op_already_sponsored"
    if source in ctx.sponsoring or sponsored in ctx.sponsoring.values():
        return "op_recursive"
    ctx.sponsoring[sponsored] = source
    return "op_success"


def apply_end(op: Operation, source: str, st: Overlay, ctx: ApplyContext) -> str:
    if ctx.sponsoring.pop(source, None) is None:
        return "op_not_sponsored"
    return "op_success"
