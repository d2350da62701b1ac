"""ManageData: set, change or delete a named value (name 1-64 bytes, value <= 64 bytes)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from stellar_sdk.xdr import Operation

from flwr_stellar.ledger.embedded.entries import DataEntry
from flwr_stellar.ledger.embedded.sponsorship import release, reserve_owner
from flwr_stellar.ledger.embedded.state import Overlay

if TYPE_CHECKING:
    from flwr_stellar.ledger.embedded.ops import ApplyContext

THRESHOLD = "med"


def apply(op: Operation, source: str, st: Overlay, ctx: ApplyContext) -> str:
    body = op.body.manage_data_op
    assert body is not None
    raw_name = body.data_name.string64
    value = body.data_value.data_value if body.data_value is not None else None
    try:
        name = raw_name.decode("ascii") if isinstance(raw_name, bytes) else str(raw_name)
    except UnicodeDecodeError:
        return "op_invalid_name"
    if not 1 <= len(name) <= 64 or not name.isprintable():
        return "op_invalid_name"
    existing = st.data(source, name)
    if value is None:
        if existing is None:
            return "op_data_name_not_found"
        st.delete(("data", source, name))
        st.adjust_subentries(source, -1)
        release(st, source, existing.sponsor, 1)
        return "op_success"
    if existing is None:
        failed = reserve_owner(st, source, ctx.sponsoring, 1, ctx.base_reserve)
        if failed:
            return failed
        st.adjust_subentries(source, +1)
        st.put(
            DataEntry(
                account_id=source, name=name, value=bytes(value), sponsor=ctx.sponsoring.get(source)
            )
        )
    else:
        st.put(replace(existing, value=bytes(value)))
    return "op_success"
