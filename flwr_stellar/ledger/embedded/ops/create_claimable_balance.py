"""CreateClaimableBalance: coins set aside for up to 10 claimants, each under a predicate.

The claimants need not exist nor trust the asset: that is what lets a server pay a node that
has no account yet. The source pays the amount and one base reserve per claimant (or its
sponsor does, inside a sponsoring sandwich); the id is sha256 of the operation's id (the
transaction's source and sequence number and the operation's index), as stellar-core derives it.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import TYPE_CHECKING

from stellar_sdk import xdr

from flwr_stellar.ledger.base import NATIVE
from flwr_stellar.ledger.embedded.entries import ClaimableBalance
from flwr_stellar.ledger.embedded.ops import predicates
from flwr_stellar.ledger.embedded.ops.xdr_util import (
    account_id,
    asset_string,
    asset_valid,
    issuer_of,
)
from flwr_stellar.ledger.embedded.state import Overlay

if TYPE_CHECKING:
    from flwr_stellar.ledger.embedded.ops import ApplyContext

THRESHOLD = "med"
MAX_CLAIMANTS = 10


def balance_id(tx_source: str, tx_seq: int, op_index: int) -> str:
    """Horizon's hex id (``00000000`` + sha256) of the balance made by operation ``op_index``
    (0-based) of the transaction from ``tx_source`` with sequence number ``tx_seq``."""
    from stellar_sdk import Keypair

    preimage = xdr.HashIDPreimage(
        type=xdr.EnvelopeType.ENVELOPE_TYPE_OP_ID,
        operation_id=xdr.HashIDPreimageOperationID(
            source_account=Keypair.from_public_key(tx_source).xdr_account_id(),
            seq_num=xdr.SequenceNumber(xdr.Int64(tx_seq)),
            op_num=xdr.Uint32(op_index),
        ),
    )
    return "00000000" + hashlib.sha256(preimage.to_xdr_bytes()).hexdigest()


def apply(op: xdr.Operation, source: str, st: Overlay, ctx: ApplyContext) -> str:
    body = op.body.create_claimable_balance_op
    assert body is not None
    asset, amount = asset_string(body.asset), body.amount.int64
    if amount <= 0 or not 1 <= len(body.claimants) <= MAX_CLAIMANTS or not asset_valid(body.asset):
        return "op_malformed"
    claimants: list[tuple[str, object]] = []
    for claimant in body.claimants:
        v0 = claimant.v0
        assert v0 is not None
        try:
            predicate = predicates.decode(v0.predicate, ctx.close_time)
        except predicates.PredicateError:
            return "op_malformed"
        claimants.append((account_id(v0.destination), predicate))
    if len({c for c, _ in claimants}) != len(claimants):
        return "op_malformed"

    # the reserve: one per claimant, to the source's active sponsor or the source itself
    sponsor_id = ctx.sponsoring.get(source, source)
    sponsor = st.account(sponsor_id)
    assert sponsor is not None
    grown = replace(sponsor, num_sponsoring=sponsor.num_sponsoring + len(claimants))
    if grown.balance < grown.min_balance(ctx.base_reserve):
        return "op_low_reserve"
    st.put(grown)

    if asset == NATIVE:
        src = st.account(source)
        assert src is not None
        if src.available(ctx.base_reserve) < amount:
            return "op_underfunded"
        st.put(replace(src, balance=src.balance - amount))
    elif source != issuer_of(asset):
        line = st.trustline(source, asset)
        if line is None:
            return "op_no_trust"
        if not line.authorized:
            return "op_not_authorized"
        if line.balance < amount:
            return "op_underfunded"
        st.put(replace(line, balance=line.balance - amount))
    assert ctx.tx_source is not None
    ctx.participants.update(c for c, _ in claimants)
    st.put(
        ClaimableBalance(
            balance_id=balance_id(ctx.tx_source, ctx.tx_seq, ctx.op_index - 1),
            asset=asset,
            amount=amount,
            claimants=tuple(claimants),
            sponsor=sponsor_id,
            created_ledger=ctx.ledger_seq,
        )
    )
    return "op_success"
