"""Small conversions from stellar_sdk XDR objects to the strings the ledger keys on."""

from __future__ import annotations

from functools import lru_cache

from stellar_sdk import StrKey
from stellar_sdk.xdr import (
    AccountID,
    Asset,
    AssetType,
    MuxedAccount,
    Transaction,
    TransactionEnvelope,
)

from flwr_stellar.ledger.base import NATIVE


@lru_cache(maxsize=65536)
def encode_key(raw: bytes) -> str:
    """G... strkey of a raw ed25519 key; cached: base32 + CRC is the hot path of payouts."""
    return StrKey.encode_ed25519_public_key(raw)


def account_id(pk: AccountID) -> str:
    key = pk.account_id.ed25519
    assert key is not None
    return encode_key(key.uint256)


def muxed_id(muxed: MuxedAccount) -> str:
    if muxed.ed25519 is not None:
        return encode_key(muxed.ed25519.uint256)
    assert muxed.med25519 is not None
    return encode_key(muxed.med25519.ed25519.uint256)


def asset_string(asset: Asset) -> str:
    if asset.type == AssetType.ASSET_TYPE_NATIVE:
        return NATIVE
    if asset.type == AssetType.ASSET_TYPE_CREDIT_ALPHANUM4:
        a = asset.alpha_num4
        assert a is not None
        return f"{_code(a.asset_code.asset_code4)}:{account_id(a.issuer)}"
    a12 = asset.alpha_num12
    assert a12 is not None
    return f"{_code(a12.asset_code.asset_code12)}:{account_id(a12.issuer)}"


def _code(raw: bytes) -> str:
    return raw.rstrip(b"\x00").decode("ascii", errors="replace")


def issuer_of(asset: str) -> str:
    return asset.split(":", 1)[1]


def valid_code(asset: str) -> bool:
    code = asset.split(":", 1)[0]
    return 1 <= len(code) <= 12 and code.isascii() and code.isalnum()


def transaction_of(envelope: TransactionEnvelope) -> Transaction | None:
    """The transaction an envelope carries: its own (v1) or a fee bump's inner one; None for
    anything else (v0)."""
    if envelope.v1 is not None:
        return envelope.v1.tx
    if envelope.fee_bump is not None and envelope.fee_bump.tx.inner_tx.v1 is not None:
        return envelope.fee_bump.tx.inner_tx.v1.tx
    return None
