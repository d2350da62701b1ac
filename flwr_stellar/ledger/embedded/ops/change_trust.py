"""ChangeTrust: create, re-limit or (limit 0, zero balance) remove a trustline to an asset."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from stellar_sdk.xdr import AssetType, Operation

from flwr_stellar.ledger.embedded.entries import (
    AUTH_CLAWBACK_ENABLED,
    AUTH_REQUIRED,
    AUTHORIZED,
    TRUSTLINE_CLAWBACK_ENABLED,
    TrustLine,
)
from flwr_stellar.ledger.embedded.ops.xdr_util import account_id, asset_valid
from flwr_stellar.ledger.embedded.sponsorship import release, reserve_owner
from flwr_stellar.ledger.embedded.state import Overlay

if TYPE_CHECKING:
    from flwr_stellar.ledger.embedded.ops import ApplyContext

THRESHOLD = "med"


def _asset(op: Operation) -> str | None:
    line = op.body.change_trust_op.line  # type: ignore[union-attr]
    if line.type == AssetType.ASSET_TYPE_CREDIT_ALPHANUM4 and line.alpha_num4:
        code, issuer = line.alpha_num4.asset_code.asset_code4, line.alpha_num4.issuer
    elif line.type == AssetType.ASSET_TYPE_CREDIT_ALPHANUM12 and line.alpha_num12:
        code, issuer = line.alpha_num12.asset_code.asset_code12, line.alpha_num12.issuer
    else:
        return None  # native or a liquidity pool share: not a trustline we support
    if not asset_valid(line):
        return None  # malformed code (stellar-core's isAssetValid)
    return f"{_code(code)}:{account_id(issuer)}"


def _code(raw: bytes) -> str:
    return raw.rstrip(b"\x00").decode("ascii", errors="replace")


def apply(op: Operation, source: str, st: Overlay, ctx: ApplyContext) -> str:
    asset, limit = _asset(op), op.body.change_trust_op.limit.int64  # type: ignore[union-attr]
    if asset is None or limit < 0:
        return "op_malformed"
    issuer = asset.split(":", 1)[1]
    if issuer == source:
        return "op_self_not_allowed"
    line = st.trustline(source, asset)
    if line is not None:
        if limit == 0:
            if line.balance != 0:
                return "op_invalid_limit"
            st.delete(("tl", source, asset))
            st.adjust_subentries(source, -1)
            release(st, source, line.sponsor, 1)
            return "op_success"
        if limit < line.balance:
            return "op_invalid_limit"
        st.put(replace(line, limit=limit))
        return "op_success"
    if limit == 0:
        return "op_invalid_limit"
    issuer_account = st.account(issuer)
    if issuer_account is None:
        return "op_no_issuer"
    failed = reserve_owner(st, source, ctx.sponsoring, 1, ctx.base_reserve)
    if failed:
        return failed
    flags = 0 if issuer_account.flags & AUTH_REQUIRED else AUTHORIZED
    if issuer_account.flags & AUTH_CLAWBACK_ENABLED:
        flags |= TRUSTLINE_CLAWBACK_ENABLED
    st.put(
        TrustLine(
            account_id=source,
            asset=asset,
            balance=0,
            limit=limit,
            flags=flags,
            sponsor=ctx.sponsoring.get(source),
        )
    )
    st.adjust_subentries(source, +1)
    return "op_success"
