"""The per-round table printed at the end of a run."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

COLUMNS = (
    ("replies_accepted", "accepted", "{:.0f}"),
    ("replies_rejected", "rejected", "{:.0f}"),
    ("dlc_paid", "DLC paid", "{:.2f}"),
    ("train_loss", "train loss", "{:.4f}"),
    ("central_loss", "test loss", "{:.4f}"),
    ("central_accuracy", "test accuracy", "{:.2%}"),
    ("elapsed_s", "elapsed s", "{:.1f}"),
)


def render_summary(rounds: Mapping[int, Mapping[str, float]], out: Path) -> str:
    table = Table(title="flwr-stellar: per-round results", title_justify="left")
    table.add_column("round", justify="right")
    shown = [c for c in COLUMNS if any(c[0] in row for row in rounds.values())]
    for _, header, _ in shown:
        table.add_column(header, justify="right")
    for server_round, row in sorted(rounds.items()):
        table.add_row(
            str(server_round),
            *(fmt.format(row[key]) if key in row else "-" for key, _, fmt in shown),
        )
    buf = io.StringIO()
    console = Console(file=buf, width=100, force_terminal=False, color_system=None)
    console.print(table)
    console.print(f"outputs: {out}  (metrics.json, model.pt)")
    return "\n" + buf.getvalue()


def render_rewards(extra: Mapping[str, Any]) -> str:
    """Each round's anchor and each pseudonym's DLC: owed by the manifests vs. on the ledger."""
    from flwr_stellar.payments.amounts import format_amount

    anchors = Table(title="rounds on the ledger", title_justify="left")
    for header in ("round", "manifest (MemoHash)", "transactions", "paid", "problems"):
        anchors.add_column(header)
    for server_round, a in extra.get("anchors", {}).items():
        anchors.add_row(
            server_round,
            a["manifest"][:16] + "…",
            " ".join(h[:10] + "…" for h in a["transactions"]),
            format_amount(a["paid_stroops"]),
            "; ".join(a["problems"]) or "-",
        )
    code = str(extra.get("asset", "DLC")).split(":")[0]
    rewards = Table(title=f"{code} per pseudonym (read back from the ledger)", title_justify="left")
    for header in ("pseudonym", "owed (manifests)", "balance (ledger)", "match"):
        rewards.add_column(header)
    owed_total = held_total = 0
    for pseudonym, r in extra.get("rewards", {}).items():
        owed_total += r["owed_stroops"]
        held_total += r["balance_stroops"]
        rewards.add_row(
            pseudonym[:10] + "…" + pseudonym[-4:],
            format_amount(r["owed_stroops"]),
            format_amount(r["balance_stroops"]),
            "yes" if r["owed_stroops"] == r["balance_stroops"] else "NO",
        )
    rewards.add_row("total", format_amount(owed_total), format_amount(held_total), "")
    buf = io.StringIO()
    console = Console(file=buf, width=110, force_terminal=False, color_system=None)
    console.print(anchors)
    console.print(rewards)
    console.print(f"ledger: {extra.get('ledger', {}).get('location', '?')}")
    return "\n" + buf.getvalue()
