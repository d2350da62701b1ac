"""Horizon-compatible HTTP front end over the embedded ledger (the subset stellar_sdk uses).

Built on Starlette, served by uvicorn, bound to 127.0.0.1 by default. Every error is a JSON
problem body with a 4xx status; never 413/429/503/504 for ordinary failures (the SDK retries
those silently, so a POST could be applied twice). Requests are handled on the event loop
thread one at a time, which serialises access to the SQLite connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from flwr_stellar.ledger.base import LedgerError
from flwr_stellar.ledger.embedded import EmbeddedLedger
from flwr_stellar.ledger.horizon_json import (
    account_to_json,
    amount_str,
    iso_time,
    payment_to_json,
    tx_to_json,
)

MAX_BODY_BYTES = 256 * 1024
PROBLEM = "https://stellar.org/horizon-errors/"


def problem(
    status: int, kind: str, title: str, detail: str, extras: dict[str, Any] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM + kind,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if extras:
        body["extras"] = extras
    return JSONResponse(body, status_code=status)


def _query(request: Request) -> tuple[str | None, int, str]:
    q = request.query_params
    limit_text = q.get("limit", "10")
    if not limit_text.isdigit():
        raise LedgerError(f"limit must be an integer, got {limit_text!r}")
    return q.get("cursor") or None, int(limit_text), q.get("order", "asc")


def _page(
    request: Request, records: list[dict[str, Any]], next_cursor: str | None
) -> dict[str, Any]:
    base = str(request.url).split("?")[0]
    params = dict(request.query_params)
    links = {"self": {"href": str(request.url)}}
    if next_cursor:
        links["next"] = {"href": f"{base}?{urlencode(params | {'cursor': next_cursor})}"}
    return {"_links": links, "_embedded": {"records": records}}


def create_app(ledger: EmbeddedLedger, *, max_body: int = MAX_BODY_BYTES) -> Starlette:
    async def root(request: Request) -> JSONResponse:
        header = ledger.latest_ledger()
        return JSONResponse(
            {
                "horizon_version": "flwr-stellar-embedded",
                "network_passphrase": ledger.network_passphrase,
                "history_latest_ledger": header["seq"],
                "core_latest_ledger": header["seq"],
                "current_protocol_version": 22,
            }
        )

    async def accounts(request: Request) -> JSONResponse:
        asset = request.query_params.get("asset")
        if not asset:
            raise LedgerError("list accounts by asset: /accounts?asset=CODE:ISSUER")
        cursor, limit, _ = _query(request)
        page = ledger.holders(asset, cursor=cursor, limit=limit)
        records = [account_to_json(a) for a in page.records]
        return JSONResponse(_page(request, records, page.next_cursor))

    async def account(request: Request) -> JSONResponse:
        info = ledger.load_account(request.path_params["account_id"])
        return JSONResponse(account_to_json(info))

    async def account_transactions(request: Request) -> JSONResponse:
        cursor, limit, order = _query(request)
        page = ledger.account_transactions(
            request.path_params["account_id"], cursor=cursor, limit=limit, order=order
        )
        records = [tx_to_json(t) for t in page.records]
        return JSONResponse(_page(request, records, page.next_cursor))

    async def account_payments(request: Request) -> JSONResponse:
        cursor, limit, order = _query(request)
        page = ledger.account_payments(
            request.path_params["account_id"], cursor=cursor, limit=limit, order=order
        )
        return JSONResponse(
            _page(request, [payment_to_json(p) for p in page.records], page.next_cursor)
        )

    async def transaction(request: Request) -> JSONResponse:
        tx_hash = request.path_params["tx_hash"]
        if len(tx_hash) != 64 or any(c not in "0123456789abcdefABCDEF" for c in tx_hash):
            raise LedgerError(f"invalid transaction hash {tx_hash!r}")
        t = ledger.transaction(tx_hash)
        return JSONResponse(tx_to_json(t))

    async def submit(request: Request) -> JSONResponse:
        if int(request.headers.get("content-length") or 0) > max_body:
            return problem(
                400,
                "transaction_malformed",
                "Transaction Malformed",
                f"request body larger than {max_body} bytes",
            )
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                return problem(
                    400,
                    "transaction_malformed",
                    "Transaction Malformed",
                    f"request body larger than {max_body} bytes",
                )
        try:
            fields = parse_qs(body.decode("ascii"), strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            fields = {}
        envelope = (fields.get("tx") or [""])[0]
        if not envelope:
            return problem(
                400,
                "transaction_malformed",
                "Transaction Malformed",
                "form field 'tx' (a base64 TransactionEnvelope) is required",
            )
        result = ledger.submit(envelope)
        if result.successful:
            return JSONResponse(
                {
                    "hash": result.hash,
                    "ledger": result.ledger,
                    "successful": True,
                    "envelope_xdr": result.envelope_xdr,
                    "result_xdr": result.result_xdr,
                    "fee_charged": str(result.fee_charged),
                }
            )
        return problem(
            400,
            "transaction_failed",
            "Transaction Failed",
            "The transaction failed when submitted to the stellar network.",
            {
                "hash": result.hash,
                "envelope_xdr": result.envelope_xdr,
                "result_xdr": result.result_xdr,
                "result_codes": {
                    "transaction": result.tx_code,
                    "operations": list(result.op_codes),
                },
                "applied": result.applied,
                "fee_charged": str(result.fee_charged),
            },
        )

    async def ledgers(request: Request) -> JSONResponse:
        _, limit, order = _query(request)
        if order not in ("asc", "desc") or not 1 <= limit <= 200:
            raise LedgerError("order must be asc|desc and limit in [1, 200]")
        rows = ledger.store.db.execute(
            f"SELECT seq, hash, prev_hash, close_time, total_coins, fee_pool, base_fee, "
            f"base_reserve, tx_count, op_count FROM ledgers ORDER BY seq {order.upper()} "
            f"LIMIT ?",
            (limit,),
        ).fetchall()
        records = [
            {
                "id": h,
                "hash": h,
                "prev_hash": p,
                "sequence": s,
                "paging_token": str(s << 32),
                "closed_at": iso_time(t),
                "total_coins": amount_str(tc),
                "fee_pool": amount_str(fp),
                "base_fee_in_stroops": bf,
                "base_reserve_in_stroops": br,
                "successful_transaction_count": n,
                "operation_count": ops,
                "max_tx_set_size": 1,
                "protocol_version": 22,
            }
            for s, h, p, t, tc, fp, bf, br, n, ops in rows
        ]
        return JSONResponse(_page(request, records, None))

    async def fee_stats(request: Request) -> JSONResponse:
        header = ledger.latest_ledger()
        fee = str(header["base_fee"])
        dist = {
            k: fee
            for k in (
                "min",
                "max",
                "mode",
                "p10",
                "p20",
                "p30",
                "p40",
                "p50",
                "p60",
                "p70",
                "p80",
                "p90",
                "p95",
                "p99",
            )
        }
        return JSONResponse(
            {
                "last_ledger": str(header["seq"]),
                "last_ledger_base_fee": fee,
                "ledger_capacity_usage": "0.00",
                "fee_charged": dist,
                "max_fee": dist,
            }
        )

    async def friendbot(request: Request) -> JSONResponse:
        address = request.query_params.get("addr", "")
        result = ledger.fund(address)
        if result.successful:
            return JSONResponse({"hash": result.hash, "ledger": result.ledger, "successful": True})
        return problem(
            400,
            "transaction_failed",
            "Transaction Failed",
            "friendbot could not fund the account (does it exist already?)",
            {"result_codes": {"transaction": result.tx_code, "operations": list(result.op_codes)}},
        )

    async def ledger_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LedgerError)
        if exc.status == 404:
            return problem(404, "not_found", "Resource Missing", exc.message)
        return problem(exc.status, "bad_request", "Bad Request", exc.message, exc.extras or None)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        status = (
            exc.status_code
            if 400 <= exc.status_code < 500 and exc.status_code not in (413, 429)
            else 400
        )
        kind = {404: "not_found", 405: "method_not_allowed"}.get(status, "bad_request")
        return problem(status, kind, str(exc.detail), f"{request.method} {request.url.path}")

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # a bug, not the client's fault; 500 is safe (the SDK does not retry it)
        return problem(500, "server_error", "Internal Server Error", type(exc).__name__)

    handlers: dict[Any, Callable[[Request, Exception], Awaitable[JSONResponse]]] = {
        LedgerError: ledger_error,
        HTTPException: http_error,
        Exception: internal_error,
    }
    return Starlette(
        routes=[
            Route("/", root),
            Route("/accounts", accounts),
            Route("/accounts/{account_id}", account),
            Route("/accounts/{account_id}/transactions", account_transactions),
            Route("/accounts/{account_id}/payments", account_payments),
            Route("/transactions", submit, methods=["POST"]),
            Route("/transactions/{tx_hash}", transaction),
            Route("/ledgers", ledgers),
            Route("/fee_stats", fee_stats),
            Route("/friendbot", friendbot),
        ],
        exception_handlers=handlers,
    )


def serve(
    db: str, *, host: str = "127.0.0.1", port: int = 8000, network_passphrase: str | None = None
) -> None:
    import uvicorn

    from flwr_stellar.ledger.embedded.ledger import DEFAULT_PASSPHRASE

    ledger = EmbeddedLedger(db, network_passphrase or DEFAULT_PASSPHRASE)
    uvicorn.run(
        create_app(ledger),
        host=host,
        port=port,
        log_level="warning",
        limit_concurrency=256,
        timeout_keep_alive=5,
    )
