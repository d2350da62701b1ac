"""The per-round table printed at the end of a run."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console
from rich.table import Table

COLUMNS = (
    ("replies_accepted", "accepted", "{:.0f}"),
    ("replies_rejected", "rejected", "{:.0f}"),
    ("dlc_paid", "DLC paid", "{:.2f}"),
    ("train_loss", "train loss", "{:.4f}"),
    ("central_loss", "test loss", "{:.4f}"),
    ("central_accuracy", "test accuracy", "{:.2%}"),
    ("attack_success_rate", "backdoor success", "{:.1%}"),
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
