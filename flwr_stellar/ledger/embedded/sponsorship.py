"""Who pays the base reserve of a new ledger entry: its owner, or its sponsor.

Between BeginSponsoringFutureReserves (by the sponsor) and EndSponsoringFutureReserves (by the
sponsored account) in one transaction, every entry the sponsored account gains is paid for by
the sponsor: the sponsor's ``num_sponsoring`` and the owner's ``num_sponsored`` grow by the
entry's reserve count (2 for an account, 1 for a trustline or data entry), so the owner's
minimum balance does not change and the sponsor's does.
"""

from __future__ import annotations

from dataclasses import replace

from flwr_stellar.ledger.embedded.state import Overlay


def reserve_owner(
    st: Overlay,
    owner: str,
    active: dict[str, str],
    count: int,
    base_reserve: int,
    new_account_balance: int | None = None,
) -> str | None:
    """Charge ``count`` reserves for a new entry of ``owner``; the op code on failure.

    Returns None on success (the counters are updated), else "op_low_reserve".
    ``new_account_balance`` is given when the entry is the owner's account itself.
    """
    sponsor_id = active.get(owner)
    if sponsor_id is None:
        if new_account_balance is not None:
            return None if new_account_balance >= count * base_reserve else "op_low_reserve"
        acct = st.account(owner)
        assert acct is not None
        needed = replace(acct, num_subentries=acct.num_subentries + count).min_balance(base_reserve)
        return None if acct.balance >= needed else "op_low_reserve"
    sponsor = st.account(sponsor_id)
    assert sponsor is not None
    grown = replace(sponsor, num_sponsoring=sponsor.num_sponsoring + count)
    if sponsor.balance < grown.min_balance(base_reserve):
        return "op_low_reserve"
    st.put(grown)
    if new_account_balance is None:
        st.update_account(owner, lambda a: replace(a, num_sponsored=a.num_sponsored + count))
    return None


def release(st: Overlay, owner: str, sponsor: str | None, count: int) -> None:
    """An entry of ``owner`` paid by ``sponsor`` is gone: give the reserves back."""
    if sponsor is None:
        return
    st.update_account(sponsor, lambda a: replace(a, num_sponsoring=a.num_sponsoring - count))
    if st.account(owner) is not None:
        st.update_account(owner, lambda a: replace(a, num_sponsored=a.num_sponsored - count))
