"""CreateAccount: a new account funded with at least the minimum balance (2 base reserves)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from stellar_sdk.xdr import Operation

from flwr_stellar.ledger.base import NATIVE
from flwr_stellar.ledger.embedded.entries import Account
from flwr_stellar.ledger.embedded.ops.xdr_util import account_id
from flwr_stellar.ledger.embedded.sponsorship import reserve_owner
from flwr_stellar.ledger.embedded.state import Overlay

if TYPE_CHECKING:
    from flwr_stellar.ledger.embedded.ops import ApplyContext

THRESHOLD = "med"


def apply(op: Operation, source: str, st: Overlay, ctx: ApplyContext) -> str:
    body = op.body.create_account_op
    assert body is not None
    destination, amount = account_id(body.destination), body.starting_balance.int64
    sponsor = ctx.sponsoring.get(destination)
    if amount < 0 or (amount == 0 and sponsor is None) or destination == source:
        return "op_malformed"  # a 0 starting balance is fine only for a sponsored account
    if st.account(destination) is not None:
        return "op_already_exists"
    src = st.account(source)
    assert src is not None
    if src.available(ctx.base_reserve) < amount:
        return "op_underfunded"
    st.put(replace(src, balance=src.balance - amount))
    failed = reserve_owner(
        st, destination, ctx.sponsoring, 2, ctx.base_reserve, new_account_balance=amount
    )
    if failed:
        return failed
    st.put(
        Account(
            account_id=destination,
            balance=amount,
            seq_num=ctx.ledger_seq << 32,
            num_sponsored=2 if sponsor else 0,
            sponsor=sponsor,
        )
    )
    ctx.record_payment("create_account", source, destination, NATIVE, amount)
    return "op_success"
