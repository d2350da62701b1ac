"""Horizon's JSON shapes, both ways: the server writes them, HorizonLedger reads them.

Only the fields stellar_sdk.Server and flwr-stellar use; amounts are strings with 7 decimals
("12.5000000"), sequence numbers strings, as Horizon sends them.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flwr_stellar.ledger.base import (
    NATIVE,
    STROOPS_PER_UNIT,
    AccountInfo,
    Balance,
    PaymentRecord,
    TxRecord,
)

ACCOUNT_FLAG_NAMES = (
    (1, "auth_required"),
    (2, "auth_revocable"),
    (4, "auth_immutable"),
    (8, "auth_clawback_enabled"),
)


def amount_str(stroops: int) -> str:
    sign = "-" if stroops < 0 else ""
    whole, frac = divmod(abs(stroops), STROOPS_PER_UNIT)
    return f"{sign}{whole}.{frac:07d}"


def parse_amount(text: str) -> int:
    value = Decimal(text) * STROOPS_PER_UNIT
    if value != value.to_integral_value():
        raise ValueError(f"amount {text!r} has more than 7 decimals")
    return int(value)


def iso_time(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unix_time(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


def _asset_fields(asset: str) -> dict[str, str]:
    if asset == NATIVE:
        return {"asset_type": "native"}
    code, issuer = asset.split(":", 1)
    kind = "credit_alphanum4" if len(code) <= 4 else "credit_alphanum12"
    return {"asset_type": kind, "asset_code": code, "asset_issuer": issuer}


def _asset_from(d: dict[str, Any], prefix: str = "") -> str:
    if d.get(f"{prefix}asset_type") == "native":
        return NATIVE
    return f"{d[f'{prefix}asset_code']}:{d[f'{prefix}asset_issuer']}"


# ---------------------------------------------------------------------------- accounts
def account_to_json(a: AccountInfo, base_url: str = "") -> dict[str, Any]:
    balances = []
    for b in a.balances:
        entry: dict[str, Any] = {
            "balance": amount_str(b.balance),
            **_asset_fields(b.asset),
            "buying_liabilities": "0.0000000",
            "selling_liabilities": "0.0000000",
        }
        if b.asset != NATIVE:
            entry |= {
                "limit": amount_str(b.limit or 0),
                "is_authorized": bool(b.flags & 1),
                "is_authorized_to_maintain_liabilities": bool(b.flags & 2),
                "is_clawback_enabled": bool(b.flags & 4),
            }
        balances.append(entry)
    signers = [{"weight": w, "key": k, "type": "ed25519_public_key"} for k, w in a.signers]
    signers.append({"weight": a.master_weight, "key": a.account_id, "type": "ed25519_public_key"})
    return {
        "_links": {"self": {"href": f"{base_url}/accounts/{a.account_id}"}},
        "id": a.account_id,
        "account_id": a.account_id,
        "paging_token": a.account_id,
        "sequence": str(a.sequence),
        "subentry_count": a.num_subentries,
        "home_domain": a.home_domain,
        "thresholds": {
            "low_threshold": a.thresholds[0],
            "med_threshold": a.thresholds[1],
            "high_threshold": a.thresholds[2],
        },
        "flags": {name: bool(a.flags & bit) for bit, name in ACCOUNT_FLAG_NAMES},
        "balances": balances,
        "signers": signers,
        "data": {name: base64.b64encode(value).decode() for name, value in a.data},
        "num_sponsoring": a.num_sponsoring,
        "num_sponsored": a.num_sponsored,
    }


def account_from_json(d: dict[str, Any]) -> AccountInfo:
    account_id = d["account_id"]
    balances = []
    for b in d["balances"]:
        if b.get("asset_type") == "liquidity_pool_shares":
            continue
        flags = (
            (1 if b.get("is_authorized") else 0)
            | (2 if b.get("is_authorized_to_maintain_liabilities") else 0)
            | (4 if b.get("is_clawback_enabled") else 0)
        )
        limit = parse_amount(b["limit"]) if "limit" in b else None
        balances.append(Balance(_asset_from(b), parse_amount(b["balance"]), limit, flags))
    master = next((s["weight"] for s in d["signers"] if s["key"] == account_id), 0)
    signers = tuple(sorted((s["key"], s["weight"]) for s in d["signers"] if s["key"] != account_id))
    t = d["thresholds"]
    return AccountInfo(
        account_id=account_id,
        sequence=int(d["sequence"]),
        balances=tuple(balances),
        thresholds=(t["low_threshold"], t["med_threshold"], t["high_threshold"]),
        master_weight=master,
        signers=signers,
        flags=sum(bit for bit, name in ACCOUNT_FLAG_NAMES if d["flags"].get(name)),
        num_subentries=d.get("subentry_count", 0),
        home_domain=d.get("home_domain", "") or "",
        data=tuple((k, base64.b64decode(v)) for k, v in sorted(d.get("data", {}).items())),
        num_sponsoring=d.get("num_sponsoring", 0),
        num_sponsored=d.get("num_sponsored", 0),
    )


# ---------------------------------------------------------------------------- transactions
def tx_to_json(t: TxRecord, base_url: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {
        "_links": {"self": {"href": f"{base_url}/transactions/{t.hash}"}},
        "id": t.hash,
        "hash": t.hash,
        "paging_token": t.paging_token,
        "successful": t.successful,
        "ledger": t.ledger,
        "created_at": iso_time(t.created_at),
        "source_account": t.source,
        "fee_charged": str(t.fee_charged),
        "operation_count": t.operation_count,
        "envelope_xdr": t.envelope_xdr,
        "result_codes": {"transaction": t.tx_code, "operations": list(t.op_codes)},
        "memo_type": t.memo_type,
    }
    if t.memo is not None:
        out["memo"] = t.memo
    return out


def tx_from_json(d: dict[str, Any]) -> TxRecord:
    codes = d.get("result_codes", {})
    return TxRecord(
        hash=d["hash"],
        ledger=int(d["ledger"]),
        source=d["source_account"],
        fee_charged=int(d["fee_charged"]),
        successful=bool(d["successful"]),
        memo_type=d.get("memo_type", "none"),
        memo=d.get("memo"),
        operation_count=int(d["operation_count"]),
        envelope_xdr=d["envelope_xdr"],
        created_at=unix_time(d["created_at"]),
        tx_code=codes.get("transaction", "tx_success" if d["successful"] else "tx_failed"),
        op_codes=tuple(codes.get("operations", ())),
        paging_token=str(d.get("paging_token", "")),
    )


# ---------------------------------------------------------------------------- payments
def payment_to_json(p: PaymentRecord, base_url: str = "") -> dict[str, Any]:
    common = {
        "_links": {"self": {"href": f"{base_url}/operations/{p.id}"}},
        "id": p.id,
        "paging_token": p.id,
        "transaction_hash": p.tx_hash,
        "transaction_successful": True,
        "type": p.type,
        "source_account": p.source,
    }
    if p.type == "create_account":
        return common | {
            "account": p.destination,
            "funder": p.source,
            "starting_balance": amount_str(p.amount),
        }
    return common | {
        "from": p.source,
        "to": p.destination,
        "amount": amount_str(p.amount),
        **_asset_fields(p.asset),
    }


def payment_from_json(d: dict[str, Any], ledger: int | None = None) -> PaymentRecord:
    if d["type"] == "create_account":
        dest, asset, amount = d["account"], NATIVE, parse_amount(d["starting_balance"])
    else:
        dest, asset, amount = d["to"], _asset_from(d), parse_amount(d["amount"])
    return PaymentRecord(
        id=d["id"],
        tx_hash=d["transaction_hash"],
        ledger=ledger if ledger is not None else int(d["id"]) >> 32,
        type=d["type"],
        source=d["source_account"],
        destination=dest,
        asset=asset,
        amount=amount,
    )
