"""Small conversions from stellar_sdk XDR objects to the strings the ledger keys on."""

from __future__ import annotations

from functools import lru_cache

from stellar_sdk import StrKey
from stellar_sdk.xdr import (
    AccountID,
    Asset,
    AssetType,
    ChangeTrustAsset,
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


def asset_valid(asset: Asset | ChangeTrustAsset) -> bool:
    """stellar-core's isAssetValid: a credit code is ASCII letters and digits, then only zero
    padding; 1-4 characters for alphanum4, 5-12 for alphanum12 (an operation naming another
    asset is malformed, so "DLC" padded into 12 bytes is not the 4-byte DLC)."""
    if asset.type == AssetType.ASSET_TYPE_NATIVE:
        return True
    if asset.type == AssetType.ASSET_TYPE_CREDIT_ALPHANUM4 and asset.alpha_num4 is not None:
        raw, low, high = asset.alpha_num4.asset_code.asset_code4, 1, 4
    elif asset.type == AssetType.ASSET_TYPE_CREDIT_ALPHANUM12 and asset.alpha_num12 is not None:
        raw, low, high = asset.alpha_num12.asset_code.asset_code12, 5, 12
    else:
        return False
    code = raw.rstrip(b"\x00")
    return (
        low <= len(code) <= high
        and b"\x00" not in code
        and all(c < 128 and chr(c).isalnum() for c in code)
    )
