"""Horizon's JSON shapes, both ways: the server writes them, HorizonLedger reads them.

One encoder per resource (account, transaction, operation, ledger) and one for pages, each with
Horizon's fields and HAL ``_links`` (templated where Horizon's are), because SDKs follow those
links (the JS SDK turns every link into a method, and reads an account's ``data`` only when
``_links.data`` exists). Amounts are strings with 7 decimals ("12.5000000"), sequence numbers
strings, as Horizon sends them.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from flwr_stellar.ledger.amounts import format_stroops, parse_stroops
from flwr_stellar.ledger.base import (
    NATIVE,
    AccountInfo,
    Balance,
    ClaimableBalanceRecord,
    PaymentRecord,
    TxRecord,
)

ACCOUNT_FLAG_NAMES = (
    (1, "auth_required"),
    (2, "auth_revocable"),
    (4, "auth_immutable"),
    (8, "auth_clawback_enabled"),
)


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


PAGE_TEMPLATE = "{?cursor,limit,order}"
ACCOUNT_COLLECTIONS = ("transactions", "operations", "payments", "effects", "offers", "trades")


def _link(href: str, templated: bool = False) -> dict[str, Any]:
    return {"href": href, "templated": True} if templated else {"href": href}


def page_json(
    url: str, query: dict[str, str], records: list[dict[str, Any]], order: str
) -> dict[str, Any]:
    """A collection page: ``_embedded.records`` and self / next / prev links, as Horizon pages.

    Parameters
    ----------
    url : str
        The collection's URL without query.
    query : dict
        The request's query parameters.
    records : list[dict]
        Encoded records, each with a ``paging_token``.
    order : {"asc", "desc"}
        The page's order; ``prev`` reverses it from the first record.
    """
    limit = query.get("limit", "10")
    base = {k: v for k, v in query.items() if k not in ("cursor", "order", "limit")}

    def href(cursor: str, direction: str) -> str:
        return f"{url}?{urlencode(base | {'cursor': cursor, 'limit': limit, 'order': direction})}"

    first = records[0]["paging_token"] if records else query.get("cursor", "")
    last = records[-1]["paging_token"] if records else query.get("cursor", "")
    reverse = "desc" if order == "asc" else "asc"
    return {
        "_links": {
            "self": _link(href(query.get("cursor", ""), order)),
            "next": _link(href(last, order)),
            "prev": _link(href(first, reverse)),
        },
        "_embedded": {"records": records},
    }


# ---------------------------------------------------------------------------- accounts
def account_to_json(a: AccountInfo, base_url: str = "") -> dict[str, Any]:
    balances = []
    for b in a.balances:
        entry: dict[str, Any] = {
            "balance": format_stroops(b.balance),
            **_asset_fields(b.asset),
            "buying_liabilities": "0.0000000",
            "selling_liabilities": "0.0000000",
        }
        if b.asset != NATIVE:
            entry |= {
                "limit": format_stroops(b.limit or 0),
                "is_authorized": bool(b.flags & 1),
                "is_authorized_to_maintain_liabilities": bool(b.flags & 2),
                "is_clawback_enabled": bool(b.flags & 4),
            }
        balances.append(entry)
    signers = [{"weight": w, "key": k, "type": "ed25519_public_key"} for k, w in a.signers]
    signers.append({"weight": a.master_weight, "key": a.account_id, "type": "ed25519_public_key"})
    me = f"{base_url}/accounts/{a.account_id}"
    return {
        "_links": {
            "self": _link(me),
            **{name: _link(f"{me}/{name}{PAGE_TEMPLATE}", True) for name in ACCOUNT_COLLECTIONS},
            "data": _link(f"{me}/data/{{key}}", True),
        },
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
        limit = parse_stroops(b["limit"]) if "limit" in b else None
        balances.append(Balance(_asset_from(b), parse_stroops(b["balance"]), limit, flags))
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
def tx_to_json(
    t: TxRecord, base_url: str = "", result_xdr: str = "", asked: str = ""
) -> dict[str, Any]:
    """Horizon's transaction record; ``asked`` is the hash it was looked up by: a fee bump
    found by its inner hash is named by that hash and shows the inner signatures, as
    Horizon's ``/transactions/{inner hash}``."""
    by_inner = bool(t.inner_hash) and asked.lower() == t.inner_hash
    name = t.inner_hash if by_inner else t.hash
    me = f"{base_url}/transactions/{name}"
    out: dict[str, Any] = {
        "_links": {
            "self": _link(me),
            "account": _link(f"{base_url}/accounts/{t.source}"),
            "ledger": _link(f"{base_url}/ledgers/{t.ledger}"),
            "operations": _link(f"{me}/operations{PAGE_TEMPLATE}", True),
            "effects": _link(f"{me}/effects{PAGE_TEMPLATE}", True),
            "precedes": _link(f"{base_url}/transactions?order=asc&cursor={t.paging_token}"),
            "succeeds": _link(f"{base_url}/transactions?order=desc&cursor={t.paging_token}"),
            "transaction": _link(me),
        },
        "id": name,
        "hash": name,
        "paging_token": t.paging_token,
        "successful": t.successful,
        "ledger": t.ledger,
        "created_at": iso_time(t.created_at),
        "source_account": t.source,
        "fee_account": t.fee_payer,
        "fee_charged": str(t.fee_charged),
        "operation_count": t.operation_count,
        "envelope_xdr": t.envelope_xdr,
        "result_xdr": result_xdr,
        "result_codes": {"transaction": t.tx_code, "operations": list(t.op_codes)},
        "memo_type": t.memo_type,
    }
    if t.inner_hash:
        out |= _fee_bump_fields(t)
        if by_inner:
            out["signatures"] = out["inner_transaction"]["signatures"]
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
        fee_account=d["fee_account"]
        if d.get("fee_account", d["source_account"]) != d["source_account"]
        else "",
        inner_hash=str((d.get("inner_transaction") or {}).get("hash", "")),
        inner_tx_code=str(codes.get("inner_transaction", "")),
    )


def _fee_bump_fields(t: TxRecord) -> dict[str, Any]:
    """Horizon's fields of a fee bump: its own hash and signatures, its inner transaction's,
    the fee bids of both, and the inner result code."""
    from stellar_sdk import xdr

    envelope = xdr.TransactionEnvelope.from_xdr(t.envelope_xdr)
    assert envelope.fee_bump is not None and envelope.fee_bump.tx.inner_tx.v1 is not None
    bump, inner = envelope.fee_bump, envelope.fee_bump.tx.inner_tx.v1

    def signatures(sigs: list[Any]) -> list[str]:
        return [base64.b64encode(s.signature.signature).decode() for s in sigs]

    return {
        "max_fee": str(bump.tx.fee.int64),
        "signatures": signatures(bump.signatures),
        "fee_bump_transaction": {"hash": t.hash, "signatures": signatures(bump.signatures)},
        "inner_transaction": {
            "hash": t.inner_hash,
            "signatures": signatures(inner.signatures),
            "max_fee": str(inner.tx.fee.uint32),
        },
        "result_codes": {
            "transaction": t.tx_code,
            "inner_transaction": t.inner_tx_code,
            "operations": list(t.op_codes),
        },
    }


# ---------------------------------------------------------------------------- claimable balances
def predicate_to_json(predicate: Any) -> dict[str, Any]:
    """Horizon's JSON of a stored claim predicate (absolute times as ISO and epoch)."""
    if "abs_before" in predicate:
        at = int(predicate["abs_before"])
        try:
            iso = iso_time(at)
        except (OverflowError, OSError, ValueError):  # beyond year 9999: Horizon caps it too
            iso = "9999-12-31T23:59:59Z"
        return {"abs_before": iso, "abs_before_epoch": str(at)}
    if "not" in predicate:
        return {"not": predicate_to_json(predicate["not"])}
    for name in ("and", "or"):
        if name in predicate:
            return {name: [predicate_to_json(p) for p in predicate[name]]}
    return {"unconditional": True}


def predicate_from_json(d: dict[str, Any]) -> Any:
    """A stored claim predicate from Horizon's JSON; a relative time (which Horizon sends only
    for a balance it has not made absolute) cannot be evaluated and is refused."""
    if d.get("unconditional"):
        return {"unconditional": True}
    if "abs_before" in d:
        epoch = d.get("abs_before_epoch")
        return {"abs_before": int(epoch) if epoch is not None else unix_time(d["abs_before"])}
    if "not" in d:
        return {"not": predicate_from_json(d["not"])}
    for name in ("and", "or"):
        if name in d:
            return {name: [predicate_from_json(p) for p in d[name]]}
    raise ValueError(f"unsupported claim predicate {sorted(d)}")


def claimable_balance_to_json(b: ClaimableBalanceRecord, base_url: str = "") -> dict[str, Any]:
    me = f"{base_url}/claimable_balances/{b.id}"
    return {
        "_links": {
            "self": _link(me),
            "transactions": _link(f"{me}/transactions{PAGE_TEMPLATE}", True),
            "operations": _link(f"{me}/operations{PAGE_TEMPLATE}", True),
        },
        "id": b.id,
        "asset": "native" if b.asset == NATIVE else b.asset,
        "amount": format_stroops(b.amount),
        "sponsor": b.sponsor,
        "last_modified_ledger": b.last_modified_ledger,
        "claimants": [
            {"destination": account, "predicate": predicate_to_json(p)}
            for account, p in b.claimants
        ],
        "flags": {"clawback_enabled": False},
        "paging_token": b.paging_token or b.id,
    }


def claimable_balance_from_json(d: dict[str, Any]) -> ClaimableBalanceRecord:
    return ClaimableBalanceRecord(
        id=d["id"],
        asset=NATIVE if d["asset"] == "native" else d["asset"],
        amount=parse_stroops(d["amount"]),
        sponsor=d.get("sponsor", ""),
        claimants=tuple(
            (c["destination"], predicate_from_json(c["predicate"])) for c in d["claimants"]
        ),
        last_modified_ledger=int(d.get("last_modified_ledger", 0)),
        paging_token=str(d.get("paging_token", d["id"])),
    )


# ---------------------------------------------------------------------------- payments
def payment_from_json(d: dict[str, Any], ledger: int | None = None) -> PaymentRecord:
    if d["type"] == "create_account":
        dest, asset, amount = d["account"], NATIVE, parse_stroops(d["starting_balance"])
    else:
        dest, asset, amount = d["to"], _asset_from(d), parse_stroops(d["amount"])
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


# ---------------------------------------------------------------------------- operations
OPERATION_NAMES = {
    "CREATE_ACCOUNT": "create_account",
    "PAYMENT": "payment",
    "SET_OPTIONS": "set_options",
    "CHANGE_TRUST": "change_trust",
    "ALLOW_TRUST": "allow_trust",
    "ACCOUNT_MERGE": "account_merge",
    "MANAGE_DATA": "manage_data",
    "BUMP_SEQUENCE": "bump_sequence",
    "BEGIN_SPONSORING_FUTURE_RESERVES": "begin_sponsoring_future_reserves",
    "END_SPONSORING_FUTURE_RESERVES": "end_sponsoring_future_reserves",
    "REVOKE_SPONSORSHIP": "revoke_sponsorship",
    "CLAWBACK": "clawback",
    "SET_TRUST_LINE_FLAGS": "set_trust_line_flags",
    "CREATE_CLAIMABLE_BALANCE": "create_claimable_balance",
    "CLAIM_CLAIMABLE_BALANCE": "claim_claimable_balance",
}


def _op_fields(body: Any, source: str) -> dict[str, Any]:
    """The type-specific fields Horizon gives an operation record."""
    from flwr_stellar.ledger.embedded.ops.xdr_util import account_id, asset_string, muxed_id

    def asset(a: Any, prefix: str = "") -> dict[str, str]:
        return {f"{prefix}{k}": v for k, v in _asset_fields(asset_string(a)).items()}

    name = body.type.name
    if name == "CREATE_ACCOUNT":
        op = body.create_account_op
        return {
            "starting_balance": format_stroops(op.starting_balance.int64),
            "funder": source,
            "account": account_id(op.destination),
        }
    if name == "PAYMENT":
        op = body.payment_op
        return {
            **asset(op.asset),
            "from": source,
            "to": muxed_id(op.destination),
            "amount": format_stroops(op.amount.int64),
        }
    if name == "CHANGE_TRUST":
        op = body.change_trust_op
        line = op.line
        fields: dict[str, Any] = {"limit": format_stroops(op.limit.int64), "trustor": source}
        if line.alpha_num4 is not None or line.alpha_num12 is not None:
            text = asset_string(line)
            fields |= _asset_fields(text) | {"trustee": text.split(":")[1]}
        return fields
    if name == "ACCOUNT_MERGE":
        return {"account": source, "into": muxed_id(body.destination)}
    if name == "MANAGE_DATA":
        op = body.manage_data_op
        value = op.data_value.data_value if op.data_value is not None else None
        return {
            "name": op.data_name.string64.decode("utf-8", "replace"),
            "value": base64.b64encode(value).decode() if value is not None else None,
        }
    if name == "BUMP_SEQUENCE":
        return {"bump_to": str(body.bump_sequence_op.bump_to.sequence_number.int64)}
    if name == "BEGIN_SPONSORING_FUTURE_RESERVES":
        return {"sponsored_id": account_id(body.begin_sponsoring_future_reserves_op.sponsored_id)}
    if name == "CLAWBACK":
        op = body.clawback_op
        return {
            **asset(op.asset),
            "from": muxed_id(op.from_),
            "amount": format_stroops(op.amount.int64),
        }
    if name == "SET_TRUST_LINE_FLAGS":
        op = body.set_trust_line_flags_op
        return {
            **asset(op.asset),
            "trustor": account_id(op.trustor),
            "set_flags": [b for b in (1, 2, 4) if op.set_flags.uint32 & b],
            "clear_flags": [b for b in (1, 2, 4) if op.clear_flags.uint32 & b],
        }
    if name == "CREATE_CLAIMABLE_BALANCE":
        op = body.create_claimable_balance_op
        claimants = [
            {
                "destination": account_id(c.v0.destination),
                "predicate": _xdr_predicate_json(c.v0.predicate),
            }
            for c in op.claimants
        ]
        text = asset_string(op.asset)
        return {
            "asset": "native" if text == NATIVE else text,
            "amount": format_stroops(op.amount.int64),
            "sponsor": source,
            "claimants": claimants,
        }
    if name == "CLAIM_CLAIMABLE_BALANCE":
        op = body.claim_claimable_balance_op
        return {"balance_id": op.balance_id.to_xdr_bytes().hex(), "claimant": source}
    if name == "ALLOW_TRUST":
        op = body.allow_trust_op
        return {
            "trustor": account_id(op.trustor),
            "trustee": source,
            "authorize": bool(op.authorize.uint32),
        }
    return {}


def _xdr_predicate_json(p: Any) -> dict[str, Any]:
    """An operation's predicate as Horizon shows it: relative times stay relative."""
    name = p.type.name.removeprefix("CLAIM_PREDICATE_")
    if name == "UNCONDITIONAL":
        return {"unconditional": True}
    if name == "AND":
        return {"and": [_xdr_predicate_json(c) for c in p.and_predicates or ()]}
    if name == "OR":
        return {"or": [_xdr_predicate_json(c) for c in p.or_predicates or ()]}
    if name == "NOT":
        return {"not": _xdr_predicate_json(p.not_predicate)} if p.not_predicate else {}
    if name == "BEFORE_RELATIVE_TIME":
        return {"rel_before": str(p.rel_before.int64)}
    return predicate_to_json({"abs_before": p.abs_before.int64})


def operation_to_json(t: TxRecord, index: int, base_url: str = "") -> dict[str, Any]:
    """Horizon's operation record for operation ``index`` (1-based) of transaction ``t``.

    Parameters
    ----------
    t : TxRecord
        The transaction (its envelope is decoded here).
    index : int
        Which of its operations.
    base_url : str
        The server's URL, for the links.
    """
    from stellar_sdk import xdr

    from flwr_stellar.ledger.embedded.ops.xdr_util import muxed_id, transaction_of

    envelope = xdr.TransactionEnvelope.from_xdr(t.envelope_xdr)
    tx = transaction_of(envelope)
    assert tx is not None  # the ledger stores v1 transactions and fee bumps of them
    op = tx.operations[index - 1]
    source = muxed_id(op.source_account) if op.source_account else muxed_id(tx.source_account)
    op_id = str(int(t.paging_token) | index)
    me = f"{base_url}/operations/{op_id}"
    return {
        "_links": {
            "self": _link(me),
            "transaction": _link(f"{base_url}/transactions/{t.hash}"),
            "effects": _link(f"{me}/effects"),
            "succeeds": _link(f"{base_url}/effects?order=desc&cursor={op_id}"),
            "precedes": _link(f"{base_url}/effects?order=asc&cursor={op_id}"),
        },
        "id": op_id,
        "paging_token": op_id,
        "transaction_successful": t.successful,
        "source_account": source,
        "type": OPERATION_NAMES.get(op.body.type.name, op.body.type.name.lower()),
        "type_i": op.body.type.value,
        "created_at": iso_time(t.created_at),
        "transaction_hash": t.hash,
        **_op_fields(op.body, source),
    }


# ---------------------------------------------------------------------------- ledgers
def ledger_to_json(header: dict[str, Any], base_url: str = "") -> dict[str, Any]:
    """Horizon's ledger record from a stored header."""
    seq = header["seq"]
    me = f"{base_url}/ledgers/{seq}"
    return {
        "_links": {
            "self": _link(me),
            **{
                name: _link(f"{me}/{name}{PAGE_TEMPLATE}", True)
                for name in ("transactions", "operations", "payments", "effects")
            },
        },
        "id": header["hash"],
        "paging_token": str(seq << 32),
        "hash": header["hash"],
        "prev_hash": header["prev_hash"],
        "sequence": seq,
        "successful_transaction_count": header["tx_count"],
        "failed_transaction_count": 0,
        "operation_count": header["op_count"],
        "tx_set_operation_count": header["op_count"],
        "closed_at": iso_time(header["close_time"]),
        "total_coins": format_stroops(header["total_coins"]),
        "fee_pool": format_stroops(header["fee_pool"]),
        "base_fee_in_stroops": header["base_fee"],
        "base_reserve_in_stroops": header["base_reserve"],
        "max_tx_set_size": 1000,
        "protocol_version": 22,
        "header_xdr": "",
    }
