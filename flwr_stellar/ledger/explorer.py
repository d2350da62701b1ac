"""The ledger explorer behind ``flwr-stellar ledger balances | history | round``.

Each view returns plain data (for ``--json``) and renders it as a rich table; all of them work
against the embedded file or any Horizon URL through the one Ledger protocol.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flwr_stellar.ledger.amounts import format_amount
from flwr_stellar.ledger.base import NATIVE, Ledger, LedgerError
from flwr_stellar.ledger.decode import PAGE, decode_envelope, iter_pages, iter_transactions
from flwr_stellar.payments.manifest import RoundManifest


def _render(table: Table) -> str:
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
    return _render(table)


def _tx_row(record: Any) -> dict[str, Any]:
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
        rows.append(_tx_row(record))
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
    return _render(table)


def round_view(
    ledger: Ledger, run_dir: Path, server_round: int, run_id: int | None = None
) -> dict[str, Any]:
    """A round's manifest (decoded) and the distributor's transactions under its MemoHash.

    Parameters
    ----------
    ledger : Ledger
        Where the run was anchored.
    run_dir : Path
        The run's folder with ``manifests/``.
    server_round : int
        The round.
    run_id : int, optional
        Which run, when the folder holds several (default: the latest).
    """
    from flwr_stellar.report.run_report import load_manifests

    manifests = [m for m in load_manifests(run_dir, run_id) if m.server_round == server_round]
    if not manifests:
        raise LedgerError(f"no manifest for round {server_round} in {run_dir / 'manifests'}")
    manifest: RoundManifest = manifests[0]
    digest = manifest.hash()
    txs = [
        _tx_row(t)
        for t in iter_transactions(ledger, manifest.distributor)
        if t.memo_type == "hash" and t.memo and base64.b64decode(t.memo).hex() == digest
    ]
    doc = {k: v for k, v in manifest.__dict__.items() if k not in ("contributions", "rejections")}
    doc["contributions"] = [c.__dict__ for c in manifest.contributions]
    doc["rejections"] = [r.__dict__ for r in manifest.rejections]
    return {"manifest_hash": digest, "manifest": doc, "transactions": txs}


def render_round(view: dict[str, Any]) -> str:
    m = view["manifest"]
    code = m["asset"].split(":")[0]
    head = Table(title=f"round {m['server_round']} of run {m['run_id']}", title_justify="left")
    head.add_column("field")
    head.add_column("value")
    for key in ("manifest_hash",):
        head.add_row(key, view[key])
    for key in ("previous", "model_before", "model_after", "config_hash", "asset", "distributor"):
        head.add_row(key, str(m[key]) or "-")
    head.add_row("budget", f"{format_amount(m['budget'])} {code}")
    contributions = Table(title="contributions", title_justify="left")
    for header in ("pseudonym", "examples", "score", "payout", "note"):
        contributions.add_column(header)
    for c in m["contributions"]:
        contributions.add_row(
            c["pseudonym"],
            str(c["num_examples"]),
            str(c["score"]),
            f"{format_amount(c['payout'])} {code}",
            c["note"] or "-",
        )
    rejections = Table(title="rejections", title_justify="left")
    rejections.add_column("reason")
    rejections.add_column("pseudonym")
    for r in m["rejections"]:
        rejections.add_row(r["reason"], r["pseudonym"] or "(unverified)")
    return (
        _render(head)
        + _render(contributions)
        + _render(rejections)
        + render_history(view["transactions"], "transactions under this MemoHash")
    )
