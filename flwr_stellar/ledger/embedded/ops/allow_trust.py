"""AllowTrust (deprecated by SetTrustLineFlags, still valid): the issuer sets a trustline's
authorization to 0, AUTHORIZED (1) or AUTHORIZED_TO_MAINTAIN_LIABILITIES (2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stellar_sdk.xdr import AssetType, Operation

from flwr_stellar.ledger.embedded.entries import AUTHORIZED, AUTHORIZED_TO_MAINTAIN_LIABILITIES
from flwr_stellar.ledger.embedded.ops.trust_flags import set_trust_flags
from flwr_stellar.ledger.embedded.ops.xdr_util import account_id
from flwr_stellar.ledger.embedded.state import Overlay

if TYPE_CHECKING:
    from flwr_stellar.ledger.embedded.ops import ApplyContext

THRESHOLD = "low"


def apply(op: Operation, source: str, st: Overlay, ctx: ApplyContext) -> str:
    body = op.body.allow_trust_op
    assert body is not None
    a = body.asset
    holder = a.asset_code4 if a.type == AssetType.ASSET_TYPE_CREDIT_ALPHANUM4 else a.asset_code12
    assert holder is not None
    raw: bytes = (
        getattr(holder, "asset_code4", None) or getattr(holder, "asset_code12", None) or b""
    )
    code = raw.rstrip(b"\x00").decode("ascii", errors="replace")
    authorize = int(body.authorize.uint32)
    if authorize not in (0, AUTHORIZED, AUTHORIZED_TO_MAINTAIN_LIABILITIES) or not code:
        return "op_malformed"
    trustor = account_id(body.trustor)
    line = st.trustline(trustor, f"{code}:{source}")
    keep = line.flags & ~(AUTHORIZED | AUTHORIZED_TO_MAINTAIN_LIABILITIES) if line else 0
    return set_trust_flags(st, source, trustor, f"{code}:{source}", keep | authorize)
