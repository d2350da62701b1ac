"""What an issuer may do to a trustline of its asset: shared by AllowTrust and
SetTrustLineFlags."""

from __future__ import annotations

from dataclasses import replace

from flwr_stellar.ledger.embedded.entries import (
    AUTH_REVOCABLE,
    AUTHORIZED,
    AUTHORIZED_TO_MAINTAIN_LIABILITIES,
)
from flwr_stellar.ledger.embedded.state import Overlay


def set_trust_flags(st: Overlay, issuer: str, trustor: str, asset: str, new_flags: int) -> str:
    if trustor == issuer:
        return "op_self_not_allowed"
    line = st.trustline(trustor, asset)
    if line is None:
        return "op_no_trust_line"
    auth_bits = AUTHORIZED | AUTHORIZED_TO_MAINTAIN_LIABILITIES
    if new_flags & AUTHORIZED and new_flags & AUTHORIZED_TO_MAINTAIN_LIABILITIES:
        return "op_invalid_state"
    issuer_account = st.account(issuer)
    assert issuer_account is not None
    weakened = (line.flags & AUTHORIZED and not new_flags & AUTHORIZED) or (
        line.flags & auth_bits and not new_flags & auth_bits
    )
    if weakened and not issuer_account.flags & AUTH_REVOCABLE:
        return "op_cant_revoke"
    st.put(replace(line, flags=new_flags))
    return "op_success"
