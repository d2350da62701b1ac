"""The ledger explorer behind ``flwr-stellar ledger balances | history``.

Each view returns plain data (for ``--json``) and renders it as a rich table; all of them work
against the embedded file or any Horizon URL through the one Ledger protocol. They read the
ledger only: the ``round`` view, which joins a run's manifests to the ledger, lives in
:mod:`flwr_stellar.audit.explorer`, because the ledger layer knows nothing of manifests.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from rich.console import Console
from rich.table import Table

from flwr_stellar.ledger.amounts import format_amount
from flwr_stellar.ledger.base import NATIVE, Ledger, LedgerError
from flwr_stellar.ledger.decode import PAGE, decode_envelope, iter_pages, iter_transactions


def render_table(table: Table) -> str:
    """A rich table as plain text (no colour, 140 columns), the same for a terminal and a pipe."""
    buf = io.StringIO()
    Console(file=buf, width=140, force_terminal=False, color_system=None).print(table)
    return buf.getvalue()


def balances(ledger: Ledger, asset: str) -> list[dict[str, Any]]:
    """Every holder of ``asset`` (``CODE:ISSUER``) and its balance, largest first.

    Parameters
    ----------
    ledger : Ledger
        Embedded or Horizon.
    asset : str
        The coin, e.g. the ``asset`` of a run's manifests.
    """
    if asset == NATIVE or ":" not in asset:
        raise LedgerError(f"--asset must be CODE:ISSUER, got {asset!r}")
    rows = [
        {"account": a.account_id, "balance_stroops": a.balance(asset), "xlm_stroops": a.balance()}
        for a in iter_pages(lambda cursor: ledger.holders(asset, cursor=cursor, limit=PAGE))
    ]
    return sorted(rows, key=lambda r: (-r["balance_stroops"], r["account"]))


def render_balances(rows: list[dict[str, Any]], asset: str) -> str:
    code = asset.split(":")[0]
    table = Table(title=f"{code} holders ({asset})", title_justify="left")
    for header in ("account", code, "XLM"):
        table.add_column(header)
    for r in rows:
        table.add_row(
            r["account"], format_amount(r["balance_stroops"]), format_amount(r["xlm_stroops"])
        )
    table.add_row("total", format_amount(sum(r["balance_stroops"] for r in rows)), "")
    return render_table(table)


def tx_row(record: Any) -> dict[str, Any]:
    """One transaction record as plain data: payments decoded, a hash memo as hex.

    Parameters
    ----------
    record : TxRecord
        A transaction from any backend (``iter_transactions``).
    """
    source, payments, others = decode_envelope(record)
    memo = record.memo
    if record.memo_type == "hash" and memo:
        memo = base64.b64decode(memo).hex()
    return {
        "hash": record.hash,
        "ledger": record.ledger,
        "source": source,
        "successful": record.successful,
        "codes": [record.tx_code, *record.op_codes],
        "memo_type": record.memo_type,
        "memo": memo,
        "payments": [{"destination": d, "asset": a, "amount_stroops": n} for d, a, n in payments],
        "other_operations": others,
    }


def history(ledger: Ledger, account: str, limit: int | None = None) -> list[dict[str, Any]]:
    """An account's transactions, oldest first, decoded (payments, memo as hex for hashes).

    Parameters
    ----------
    ledger : Ledger
        Embedded or Horizon.
    account : str
        ``G...`` strkey.
    limit : int, optional
        Only the first ``limit`` transactions.
    """
    rows = []
    for record in iter_transactions(ledger, account):
        rows.append(tx_row(record))
        if limit is not None and len(rows) >= limit:
            break
    return rows


def render_history(rows: list[dict[str, Any]], title: str) -> str:
    table = Table(title=title, title_justify="left")
    for header in ("ledger", "transaction", "source", "result", "memo", "payments / operations"):
        table.add_column(header)
    for r in rows:
        moves = [
            f"{format_amount(p['amount_stroops'])} {p['asset'].split(':')[0]} -> "
            f"{p['destination'][:8]}…"
            for p in r["payments"]
        ] + r["other_operations"]
        table.add_row(
            str(r["ledger"]),
            r["hash"][:16] + "…",
            r["source"][:8] + "…",
            "ok" if r["successful"] else ",".join(r["codes"]),
            f"{r['memo_type']}:{(r['memo'] or '')[:16]}" if r["memo_type"] != "none" else "-",
            "\n".join(moves) or "-",
        )
    return render_table(table)
