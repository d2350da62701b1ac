"""SetTrustLineFlags: the issuer sets/clears AUTHORIZED, MAINTAIN_LIABILITIES and
(clear only) CLAWBACK_ENABLED on a trustline of its asset."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stellar_sdk.xdr import Operation

from flwr_stellar.ledger.embedded.entries import (
    AUTHORIZED,
    AUTHORIZED_TO_MAINTAIN_LIABILITIES,
    TRUSTLINE_CLAWBACK_ENABLED,
)
from flwr_stellar.ledger.embedded.ops.trust_flags import set_trust_flags
from flwr_stellar.ledger.embedded.ops.xdr_util import account_id, asset_string, issuer_of
from flwr_stellar.ledger.embedded.state import Overlay

if TYPE_CHECKING:
    from flwr_stellar.ledger.embedded.ops import ApplyContext

THRESHOLD = "low"
ALL = AUTHORIZED | AUTHORIZED_TO_MAINTAIN_LIABILITIES | TRUSTLINE_CLAWBACK_ENABLED


def apply(op: Operation, source: str, st: Overlay, ctx: ApplyContext) -> str:
    body = op.body.set_trust_line_flags_op
    assert body is not None
    asset = asset_string(body.asset)
    set_f, clear_f = int(body.set_flags.uint32), int(body.clear_flags.uint32)
    if (
        asset == "native"
        or issuer_of(asset) != source
        or (set_f | clear_f) & ~ALL
        or set_f & clear_f
        or set_f & TRUSTLINE_CLAWBACK_ENABLED
    ):
        return "op_malformed"
    trustor = account_id(body.trustor)
    line = st.trustline(trustor, asset)
    if line is None:
        return "op_no_trust_line"
    return set_trust_flags(st, source, trustor, asset, (line.flags | set_f) & ~clear_f)
