"""AccountMerge: the source account's XLM goes to the destination; the source is removed."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from stellar_sdk.xdr import Operation

from flwr_stellar.ledger.base import NATIVE
from flwr_stellar.ledger.embedded.entries import AUTH_IMMUTABLE, INT64_MAX
from flwr_stellar.ledger.embedded.ops.xdr_util import muxed_id
from flwr_stellar.ledger.embedded.sponsorship import release
from flwr_stellar.ledger.embedded.state import Overlay

if TYPE_CHECKING:
    from flwr_stellar.ledger.embedded.ops import ApplyContext

THRESHOLD = "high"


def apply(op: Operation, source: str, st: Overlay, ctx: ApplyContext) -> str:
    assert op.body.destination is not None
    destination = muxed_id(op.body.destination)
    if destination == source:
        return "op_malformed"
    dst = st.account(destination)
    if dst is None:
        return "op_no_account"
    src = st.account(source)
    if src is None:
        return "op_no_account"
    if src.flags & AUTH_IMMUTABLE:
        return "op_immutable_set"
    if src.num_subentries or src.signers:
        return "op_has_sub_entries"
    if src.seq_num >= ctx.ledger_seq << 32:
        return "op_seqnum_too_far"
    if src.num_sponsoring:
        return "op_is_sponsor"
    if dst.balance > INT64_MAX - src.balance:
        return "op_dest_full"
    st.put(replace(dst, balance=dst.balance + src.balance))
    release(st, source, src.sponsor, 2)
    st.delete(("acct", source))
    ctx.record_payment("account_merge", source, destination, NATIVE, src.balance)
    return "op_success"
