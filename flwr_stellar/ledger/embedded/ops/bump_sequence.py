"""BumpSequence: raise the source account's sequence number (never lowers it)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from stellar_sdk.xdr import Operation

from flwr_stellar.ledger.embedded.state import Overlay

if TYPE_CHECKING:
    from flwr_stellar.ledger.embedded.ops import ApplyContext

THRESHOLD = "low"


def apply(op: Operation, source: str, st: Overlay, ctx: ApplyContext) -> str:
    bump_to = op.body.bump_sequence_op.bump_to.sequence_number.int64  # type: ignore[union-attr]
    if bump_to < 0:
        return "op_bad_seq"
    st.update_account(source, lambda a: replace(a, seq_num=max(a.seq_num, bump_to)))
    return "op_success"
