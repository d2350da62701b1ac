"""Horizon-compatible HTTP front end over the embedded ledger (the subset stellar_sdk uses).

Built on Starlette, served by uvicorn, bound to 127.0.0.1 by default. Every error is a JSON
problem body with a 4xx status; never 413/429/503/504 for ordinary failures (the SDK retries
those silently, so a POST could be applied twice). Requests are handled on the event loop
thread one at a time, which serialises access to the SQLite connection.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from flwr_stellar.ledger.base import LedgerCongestedError, LedgerError, NotFoundError, TxRecord
from flwr_stellar.ledger.embedded import Congestion, EmbeddedLedger
from flwr_stellar.ledger.horizon_json import (
    account_to_json,
    claimable_balance_to_json,
    iso_time,
    ledger_to_json,
    operation_to_json,
    page_json,
    tx_to_json,
)
from flwr_stellar.ledger.params import parse_uint
from flwr_stellar.ledger.result_xdr import (
    ResultCodeError,
    rejected_result_xdr,
    stored_result_xdr,
)
from flwr_stellar.ledger.rpc_server import rpc_endpoint

MAX_BODY_BYTES = 256 * 1024
ACCOUNT_FILTERS = "{?signer,sponsor,asset,liquidity_pool,cursor,limit,order}"
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
    limit = parse_uint(q.get("limit", "10"), "limit", 2**31)
    return q.get("cursor") or None, limit, q.get("order", "asc")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _url(request: Request) -> str:
    return _base(request) + request.url.path


def create_app(
    ledger: EmbeddedLedger,
    *,
    max_body: int = MAX_BODY_BYTES,
    rpc_retention_window: int | None = None,
) -> Starlette:
    def result_xdr(t: TxRecord) -> str:
        """The stored transaction's TransactionResult XDR ("" if a code has no XDR twin)."""
        try:
            return stored_result_xdr(t, ledger.moved_amount)
        except ResultCodeError:
            return ""

    def tx_page(request: Request, txs: tuple[TxRecord, ...], order: str) -> JSONResponse:
        base = _base(request)
        records = [tx_to_json(t, base, result_xdr(t)) for t in txs]
        return JSONResponse(page_json(_url(request), dict(request.query_params), records, order))

    def op_page(
        request: Request, ops: tuple[tuple[TxRecord, int], ...], order: str
    ) -> JSONResponse:
        base = _base(request)
        records = [operation_to_json(t, i, base) for t, i in ops]
        return JSONResponse(page_json(_url(request), dict(request.query_params), records, order))

    def ledger_seq(request: Request) -> int:
        return parse_uint(request.path_params["sequence"], "ledger sequence", 2**31)

    def ledger_json(request: Request, header: dict[str, Any]) -> dict[str, Any]:
        ok, total = ledger.store.db.execute(
            "SELECT COALESCE(SUM(successful), 0), COUNT(*) FROM txs WHERE ledger = ?",
            (header["seq"],),
        ).fetchone()
        return ledger_to_json(header, _base(request)) | {
            "successful_transaction_count": ok,
            "failed_transaction_count": total - ok,
        }

    async def root(request: Request) -> JSONResponse:
        header = ledger.latest_ledger()
        base = _base(request)
        return JSONResponse(
            {
                "_links": {
                    "account": {"href": f"{base}/accounts/{{account_id}}", "templated": True},
                    "accounts": {"href": f"{base}/accounts{ACCOUNT_FILTERS}", "templated": True},
                    "fee_stats": {"href": f"{base}/fee_stats"},
                    "friendbot": {"href": f"{base}/friendbot{{?addr}}", "templated": True},
                    "ledger": {"href": f"{base}/ledgers/{{sequence}}", "templated": True},
                    "ledgers": {
                        "href": f"{base}/ledgers{{?cursor,limit,order}}",
                        "templated": True,
                    },
                    "operation": {"href": f"{base}/operations/{{id}}", "templated": True},
                    "self": {"href": f"{base}/"},
                    "transaction": {"href": f"{base}/transactions/{{hash}}", "templated": True},
                    "transactions": {
                        "href": f"{base}/transactions{{?cursor,limit,order}}",
                        "templated": True,
                    },
                },
                "horizon_version": "flwr-stellar-embedded",
                "core_version": "flwr-stellar-embedded",
                "network_passphrase": ledger.network_passphrase,
                "history_latest_ledger": header["seq"],
                "history_latest_ledger_closed_at": iso_time(header["close_time"]),
                "history_elder_ledger": 1,
                "core_latest_ledger": header["seq"],
                "current_protocol_version": 22,
                "supported_protocol_version": 22,
                "core_supported_protocol_version": 22,
            }
        )

    async def accounts(request: Request) -> JSONResponse:
        asset = request.query_params.get("asset")
        if not asset:
            raise LedgerError("list accounts by asset: /accounts?asset=CODE:ISSUER")
        cursor, limit, _ = _query(request)
        page = ledger.holders(asset, cursor=cursor, limit=limit)
        records = [account_to_json(a, _base(request)) for a in page.records]
        return JSONResponse(page_json(_url(request), dict(request.query_params), records, "asc"))

    async def account(request: Request) -> JSONResponse:
        info = ledger.load_account(request.path_params["account_id"])
        return JSONResponse(account_to_json(info, _base(request)))

    async def account_data(request: Request) -> JSONResponse:
        info = ledger.load_account(request.path_params["account_id"])
        key = request.path_params["key"]
        value = dict(info.data).get(key)
        if value is None:
            raise NotFoundError(f"account {info.account_id} has no data entry {key!r}")
        return JSONResponse({"value": base64.b64encode(value).decode(), "sponsor": None})

    async def account_transactions(request: Request) -> JSONResponse:
        cursor, limit, order = _query(request)
        page = ledger.account_transactions(
            request.path_params["account_id"], cursor=cursor, limit=limit, order=order
        )
        return tx_page(request, page.records, order)

    async def account_operations(request: Request) -> JSONResponse:
        cursor, limit, order = _query(request)
        page = ledger.operations(
            account=request.path_params["account_id"], cursor=cursor, limit=limit, order=order
        )
        return op_page(request, page.records, order)

    async def account_payments(request: Request) -> JSONResponse:
        cursor, limit, order = _query(request)
        page = ledger.account_payments(
            request.path_params["account_id"], cursor=cursor, limit=limit, order=order
        )
        base = _base(request)
        records = [  # payments are operations: the same record, with all its fields and links
            operation_to_json(ledger.transaction(p.tx_hash), int(p.id) & 0xFFF, base)
            for p in page.records
        ]
        return JSONResponse(page_json(_url(request), dict(request.query_params), records, order))

    async def transactions(request: Request) -> JSONResponse:
        cursor, limit, order = _query(request)
        return tx_page(
            request, ledger.transactions(cursor=cursor, limit=limit, order=order).records, order
        )

    async def transaction(request: Request) -> JSONResponse:
        tx_hash = request.path_params["tx_hash"]
        if len(tx_hash) != 64 or any(c not in "0123456789abcdefABCDEF" for c in tx_hash):
            raise LedgerError(f"invalid transaction hash {tx_hash!r}")
        t = ledger.transaction(tx_hash)
        return JSONResponse(tx_to_json(t, _base(request), result_xdr(t), asked=tx_hash))

    async def transaction_operations(request: Request) -> JSONResponse:
        cursor, limit, order = _query(request)
        page = ledger.operations(
            tx_hash=request.path_params["tx_hash"], cursor=cursor, limit=limit, order=order
        )
        return op_page(request, page.records, order)

    async def operation(request: Request) -> JSONResponse:
        op_id = parse_uint(request.path_params["op_id"], "operation id", 2**63)
        if op_id & 0xFFF == 0:  # index 0 is the transaction itself, not an operation
            raise LedgerError(f"invalid operation id {op_id}: its operation index is 0")
        found = ledger.transactions(
            ledger=op_id >> 32, cursor=str((op_id & ~0xFFF) - 1), limit=1
        ).records
        if not found or int(found[0].paging_token) != op_id & ~0xFFF:
            raise NotFoundError(f"operation {op_id} not found")
        if (op_id & 0xFFF) > found[0].operation_count:
            raise NotFoundError(f"operation {op_id} not found")
        return JSONResponse(operation_to_json(found[0], op_id & 0xFFF, _base(request)))

    async def ledger_one(request: Request) -> JSONResponse:
        return JSONResponse(ledger_json(request, ledger.header(ledger_seq(request))))

    async def ledger_transactions(request: Request) -> JSONResponse:
        cursor, limit, order = _query(request)
        seq = ledger.header(ledger_seq(request))["seq"]
        page = ledger.transactions(ledger=seq, cursor=cursor, limit=limit, order=order)
        return tx_page(request, page.records, order)

    async def ledger_operations(request: Request) -> JSONResponse:
        cursor, limit, order = _query(request)
        seq = ledger.header(ledger_seq(request))["seq"]
        page = ledger.operations(ledger=seq, cursor=cursor, limit=limit, order=order)
        return op_page(request, page.records, order)

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
        if result.applied:  # in a ledger: the stored record (also after a resubmission)
            record = ledger.transaction(result.hash)
            xdr_result = result_xdr(record)
        else:
            record = None
            try:
                inner = ledger.inner_hash(envelope) if result.inner_tx_code else ""
                xdr_result = rejected_result_xdr(result, inner)
            except ResultCodeError:
                xdr_result = ""
        if result.successful and record is not None:
            return JSONResponse(tx_to_json(record, _base(request), xdr_result))
        return problem(
            400,
            "transaction_failed",
            "Transaction Failed",
            "The transaction failed when submitted to the stellar network.",
            {
                "hash": result.hash,
                "envelope_xdr": result.envelope_xdr,
                "result_xdr": xdr_result,
                "result_codes": {
                    "transaction": result.tx_code,
                    **({"inner_transaction": result.inner_tx_code} if result.inner_tx_code else {}),
                    "operations": list(result.op_codes),
                },
                "applied": result.applied,
                "fee_charged": str(result.fee_charged),
            },
        )

    async def claimable_balances(request: Request) -> JSONResponse:
        q = request.query_params
        if not (q.get("claimant") or q.get("sponsor")):
            raise LedgerError(
                "list claimable balances by claimant or sponsor: "
                "/claimable_balances?claimant=G... or ?sponsor=G..."
            )
        if q.get("asset"):
            raise LedgerError("filtering claimable balances by asset is not supported here")
        cursor, limit, order = _query(request)
        if order != "asc":
            raise LedgerError("claimable balances are listed in ascending id order only")
        page = ledger.claimable_balances(
            claimant=q.get("claimant") or None,
            sponsor=q.get("sponsor") or None,
            cursor=cursor,
            limit=limit,
        )
        records = [claimable_balance_to_json(b, _base(request)) for b in page.records]
        return JSONResponse(page_json(_url(request), dict(q), records, "asc"))

    async def claimable_balance(request: Request) -> JSONResponse:
        balance_id = request.path_params["balance_id"].lower()
        if len(balance_id) != 72 or any(c not in "0123456789abcdef" for c in balance_id):
            raise LedgerError(f"invalid claimable balance id {balance_id!r}")
        return JSONResponse(
            claimable_balance_to_json(ledger.claimable_balance(balance_id), _base(request))
        )

    async def ledgers(request: Request) -> JSONResponse:
        cursor, limit, order = _query(request)
        if order not in ("asc", "desc") or not 1 <= limit <= 200:
            raise LedgerError("order must be asc|desc and limit in [1, 200]")
        after = parse_uint(cursor, "cursor", 2**63) >> 32 if cursor else None
        where = "" if after is None else ("WHERE seq > ?" if order == "asc" else "WHERE seq < ?")
        rows = ledger.store.db.execute(
            f"SELECT seq FROM ledgers {where} ORDER BY seq {order.upper()} LIMIT ?",
            (*(() if after is None else (after,)), limit),
        ).fetchall()
        records = [ledger_json(request, ledger.header(seq)) for (seq,) in rows]
        return JSONResponse(page_json(_url(request), dict(request.query_params), records, order))

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
        if isinstance(exc, LedgerCongestedError):  # Horizon: not included in time
            return problem(504, "timeout", "Timeout", exc.message)
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
            Route("/accounts/{account_id}/data/{key}", account_data),
            Route("/accounts/{account_id}/transactions", account_transactions),
            Route("/accounts/{account_id}/operations", account_operations),
            Route("/accounts/{account_id}/payments", account_payments),
            Route("/transactions", submit, methods=["POST"]),
            Route("/transactions", transactions, methods=["GET"]),
            Route("/transactions/{tx_hash}", transaction),
            Route("/transactions/{tx_hash}/operations", transaction_operations),
            Route("/operations/{op_id}", operation),
            Route("/ledgers", ledgers),
            Route("/ledgers/{sequence}", ledger_one),
            Route("/ledgers/{sequence}/transactions", ledger_transactions),
            Route("/ledgers/{sequence}/operations", ledger_operations),
            Route("/claimable_balances", claimable_balances),
            Route("/claimable_balances/{balance_id}", claimable_balance),
            Route("/fee_stats", fee_stats),
            Route("/friendbot", friendbot),
            Route(
                "/rpc",  # Stellar RPC (JSON-RPC 2.0) on the same port
                rpc_endpoint(ledger, max_body=max_body, retention_window=rpc_retention_window),
                methods=["POST"],
            ),
        ],
        exception_handlers=handlers,
    )


def serve(
    db: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    network_passphrase: str | None = None,
    congestion: Congestion | None = None,
    rpc_retention_window: int | None = None,
) -> None:
    import uvicorn

    from flwr_stellar.ledger.embedded.ledger import DEFAULT_PASSPHRASE

    ledger = EmbeddedLedger(db, network_passphrase or DEFAULT_PASSPHRASE, congestion=congestion)
    uvicorn.run(
        create_app(ledger, rpc_retention_window=rpc_retention_window),
        host=host,
        port=port,
        log_level="warning",
        limit_concurrency=256,
        timeout_keep_alive=5,
    )
