"""ClaimClaimableBalance: a claimant whose predicate holds takes the whole balance.

The claimant needs an authorized trustline with room (or the asset is XLM, or the claimant is
its issuer); the entry goes and its sponsor's reserves come back.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from stellar_sdk import xdr

from flwr_stellar.ledger.base import NATIVE
from flwr_stellar.ledger.embedded.entries import INT64_MAX, ClaimableBalance
from flwr_stellar.ledger.embedded.ops import predicates
from flwr_stellar.ledger.embedded.ops.xdr_util import issuer_of
from flwr_stellar.ledger.embedded.state import Overlay

if TYPE_CHECKING:
    from flwr_stellar.ledger.embedded.ops import ApplyContext

THRESHOLD = "low"


def id_hex(balance_id: xdr.ClaimableBalanceID) -> str:
    """Horizon's hex form of a ClaimableBalanceID (its XDR: type, then the hash)."""
    return str(balance_id.to_xdr_bytes().hex())


def apply(op: xdr.Operation, source: str, st: Overlay, ctx: ApplyContext) -> str:
    body = op.body.claim_claimable_balance_op
    assert body is not None
    key = ("cb", id_hex(body.balance_id))
    entry = st.get(key)
    if not isinstance(entry, ClaimableBalance):
        return "op_does_not_exist"
    predicate = next((p for c, p in entry.claimants if c == source), None)
    if predicate is None or not predicates.holds(predicate, ctx.close_time):
        return "op_cannot_claim"
    if entry.asset == NATIVE:
        account = st.account(source)
        assert account is not None
        if account.balance > INT64_MAX - entry.amount:
            return "op_line_full"
        st.put(replace(account, balance=account.balance + entry.amount))
    elif source != issuer_of(entry.asset):
        line = st.trustline(source, entry.asset)
        if line is None:
            return "op_no_trust"
        if not line.authorized:
            return "op_not_authorized"
        if line.balance > line.limit - entry.amount:
            return "op_line_full"
        st.put(replace(line, balance=line.balance + entry.amount))
    st.delete(key)
    st.update_account(
        entry.sponsor,
        lambda a: replace(a, num_sponsoring=a.num_sponsoring - len(entry.claimants)),
    )
    return "op_success"
