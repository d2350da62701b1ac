"""The round view behind ``flwr-stellar ledger round RUN_DIR ROUND``: a manifest beside the
transactions that carry its hash.

It lives in ``audit/`` rather than with the ledger explorer because it joins a run's manifests
(the payments layer's records) to the ledger: the ledger layer must not know manifests exist
(arrows point down), and showing one round's evidence side by side is an audit's question.
The table pieces (transaction rows, rendering) are the ledger explorer's, so both views look
the same.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from rich.table import Table

from flwr_stellar.ledger.amounts import format_amount
from flwr_stellar.ledger.base import Ledger, LedgerError
from flwr_stellar.ledger.decode import iter_transactions
from flwr_stellar.ledger.explorer import render_history, render_table, tx_row
from flwr_stellar.payments.manifest import MANIFEST_DIR, RoundManifest, read_run_manifests


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

    Raises
    ------
    LedgerError
        No readable manifest for that round (the CLI prints it as one line).
    """
    manifests = [m for m in read_run_manifests(run_dir, run_id) if m.server_round == server_round]
    if not manifests:
        raise LedgerError(f"no manifest for round {server_round} in {run_dir / MANIFEST_DIR}")
    manifest: RoundManifest = manifests[0]
    digest = manifest.hash()
    txs = [
        tx_row(t)
        for t in iter_transactions(ledger, manifest.distributor)
        if t.memo_type == "hash" and t.memo and base64.b64decode(t.memo).hex() == digest
    ]
    rows = ("contributions", "rejections", "releases")
    doc = {k: v for k, v in manifest.__dict__.items() if k not in rows}
    for name in rows:
        doc[name] = [row.__dict__ for row in getattr(manifest, name)]
    return {"manifest_hash": digest, "manifest": doc, "transactions": txs}


def render_round(view: dict[str, Any]) -> str:
    """:func:`round_view`'s data as tables: header, contributions, rejections, transactions.

    Parameters
    ----------
    view : dict
        What :func:`round_view` returned (or its JSON, read back).
    """
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
    for header in ("pseudonym", "examples", "score", "trust", "payout", "held", "note"):
        contributions.add_column(header)
    for c in m["contributions"]:
        contributions.add_row(
            c["pseudonym"],
            str(c["num_examples"]),
            str(c["score"]),
            f"{c.get('reputation_ppm', 1_000_000) / 1e6:.3f}",
            f"{format_amount(c['payout'])} {code}",
            f"{format_amount(c.get('held', 0))} {code}",
            c["note"] or "-",
        )
    releases = Table(title="releases of held rewards (the run's last round)", title_justify="left")
    for header in ("pseudonym", "amount", "trust at the end"):
        releases.add_column(header)
    for r in m.get("releases", []):
        releases.add_row(
            r["pseudonym"],
            f"{format_amount(r['amount'])} {code}",
            f"{r['reputation_ppm'] / 1e6:.3f}",
        )
    rejections = Table(title="rejections", title_justify="left")
    rejections.add_column("reason")
    rejections.add_column("pseudonym")
    for r in m["rejections"]:
        rejections.add_row(r["reason"], r["pseudonym"] or "(unverified)")
    return (
        render_table(head)
        + render_table(contributions)
        + (render_table(releases) if m.get("releases") else "")
        + render_table(rejections)
        + render_history(view["transactions"], "transactions under this MemoHash")
    )
