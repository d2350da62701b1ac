"""RevokeSponsorship of an account, trustline or data entry: the current sponsor (or, for an
unsponsored entry, its owner) hands the reserve to whoever sponsors the source right now in
this transaction, or back to the owner, who must then afford it."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from stellar_sdk.xdr import LedgerEntryType, Operation, RevokeSponsorshipType

from flwr_stellar.ledger.embedded.entries import Account
from flwr_stellar.ledger.embedded.ops.xdr_util import account_id
from flwr_stellar.ledger.embedded.state import Key, Overlay

if TYPE_CHECKING:
    from flwr_stellar.ledger.embedded.ops import ApplyContext

THRESHOLD = "med"


def _key(op: Operation) -> Key | None:
    body = op.body.revoke_sponsorship_op
    assert body is not None
    if body.type != RevokeSponsorshipType.REVOKE_SPONSORSHIP_LEDGER_ENTRY:
        return None  # signer sponsorships are not implemented
    lk = body.ledger_key
    assert lk is not None
    if lk.type == LedgerEntryType.ACCOUNT and lk.account:
        return ("acct", account_id(lk.account.account_id))
    if lk.type == LedgerEntryType.TRUSTLINE and lk.trust_line:
        a = lk.trust_line.asset
        alpha = a.alpha_num4 or a.alpha_num12
        if alpha is None:
            return None
        code_holder = alpha.asset_code
        raw: bytes = (
            getattr(code_holder, "asset_code4", None)
            or getattr(code_holder, "asset_code12", None)
            or b""
        )
        code = raw.rstrip(b"\x00").decode("ascii", errors="replace")
        return ("tl", account_id(lk.trust_line.account_id), f"{code}:{account_id(alpha.issuer)}")
    if lk.type == LedgerEntryType.DATA and lk.data:
        name = lk.data.data_name.string64
        return (
            "data",
            account_id(lk.data.account_id),
            name.decode("ascii", errors="replace") if isinstance(name, bytes) else name,
        )
    return None


def apply(op: Operation, source: str, st: Overlay, ctx: ApplyContext) -> str:
    key = _key(op)
    if key is None:
        return "op_not_supported"
    entry = st.get(key)
    if entry is None:
        return "op_does_not_exist"
    owner, count = key[1], 2 if isinstance(entry, Account) else 1
    current = entry.sponsor
    if source != (current if current is not None else owner):
        return "op_not_sponsor"
    new = ctx.sponsoring.get(source)
    if new == current:
        return "op_success"
    if current is not None:
        st.update_account(current, lambda a: replace(a, num_sponsoring=a.num_sponsoring - count))
        st.update_account(owner, lambda a: replace(a, num_sponsored=a.num_sponsored - count))
    if new is not None:
        sponsor = st.update_account(
            new, lambda a: replace(a, num_sponsoring=a.num_sponsoring + count)
        )
        if sponsor.balance < sponsor.min_balance(ctx.base_reserve):
            return "op_low_reserve"
        st.update_account(owner, lambda a: replace(a, num_sponsored=a.num_sponsored + count))
    else:
        acct = st.account(owner)
        assert acct is not None
        if acct.balance < acct.min_balance(ctx.base_reserve):
            return "op_low_reserve"
    entry = st.get(key)  # the owner's account may itself be the entry, updated above
    assert entry is not None
    st.put(replace(entry, sponsor=new))  # type: ignore[arg-type]  # (never a balance: above)
    return "op_success"
