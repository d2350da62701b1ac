"""SetOptions: flags, master weight, thresholds, home domain and ed25519 signers."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from stellar_sdk import StrKey
from stellar_sdk.xdr import Operation, SignerKeyType

from flwr_stellar.ledger.embedded.entries import (
    ACCOUNT_FLAGS,
    AUTH_CLAWBACK_ENABLED,
    AUTH_IMMUTABLE,
    AUTH_REVOCABLE,
    MAX_SIGNERS,
)
from flwr_stellar.ledger.embedded.state import Overlay

if TYPE_CHECKING:
    from flwr_stellar.ledger.embedded.ops import ApplyContext

THRESHOLD = "med"  # "high" when it changes weights, thresholds or signers: see threshold()


def threshold(op: Operation) -> str:
    b = op.body.set_options_op
    assert b is not None
    touches_auth = any(
        x is not None
        for x in (b.master_weight, b.low_threshold, b.med_threshold, b.high_threshold, b.signer)
    )
    return "high" if touches_auth else "med"


def _u(x: object) -> int | None:
    return None if x is None else int(x.uint32)  # type: ignore[attr-defined]


def apply(op: Operation, source: str, st: Overlay, ctx: ApplyContext) -> str:
    b = op.body.set_options_op
    assert b is not None
    acct = st.account(source)
    assert acct is not None
    set_f, clear_f = _u(b.set_flags), _u(b.clear_flags)
    if (set_f or 0) & ~ACCOUNT_FLAGS or (clear_f or 0) & ~ACCOUNT_FLAGS:
        return "op_unknown_flag"
    if (set_f or 0) & (clear_f or 0):
        return "op_bad_flags"
    weights = [_u(b.master_weight), _u(b.low_threshold), _u(b.med_threshold), _u(b.high_threshold)]
    if any(w is not None and w > 255 for w in weights):
        return "op_threshold_out_of_range"
    flags = acct.flags
    if set_f or clear_f:
        if acct.flags & AUTH_IMMUTABLE:
            return "op_cant_change"
        flags = (flags | (set_f or 0)) & ~(clear_f or 0)
        if flags & AUTH_CLAWBACK_ENABLED and not flags & AUTH_REVOCABLE:
            return "op_auth_revocable_required"
    home = acct.home_domain
    if b.home_domain is not None:
        raw = b.home_domain.string32
        home = raw.decode("ascii", errors="replace") if isinstance(raw, bytes) else str(raw)
        if len(home) > 32 or not home.isprintable():
            return "op_invalid_home_domain"
    signers = dict(acct.signers)
    subentries = acct.num_subentries
    if b.signer is not None:
        if b.signer.key.type != SignerKeyType.SIGNER_KEY_TYPE_ED25519:
            return "op_not_supported"  # pre-auth tx, hash(x) and payload signers
        if source in ctx.sponsoring:
            return "op_not_supported"  # sponsored signers are not implemented
        key = StrKey.encode_ed25519_public_key(b.signer.key.ed25519.uint256)  # type: ignore[union-attr]
        weight = int(b.signer.weight.uint32)
        if key == source or weight > 255:
            return "op_bad_signer"
        if weight == 0:
            if signers.pop(key, None) is not None:
                subentries -= 1
        else:
            if key not in signers:
                if len(signers) >= MAX_SIGNERS:
                    return "op_too_many_signers"
                subentries += 1
                if acct.balance < replace(acct, num_subentries=subentries).min_balance(
                    ctx.base_reserve
                ):
                    return "op_low_reserve"
            signers[key] = weight
    master, low, med, high = weights
    st.put(
        replace(
            acct,
            flags=flags,
            home_domain=home,
            master_weight=acct.master_weight if master is None else master,
            low=acct.low if low is None else low,
            med=acct.med if med is None else med,
            high=acct.high if high is None else high,
            signers=tuple(sorted(signers.items())),
            num_subentries=subentries,
        )
    )
    return "op_success"
