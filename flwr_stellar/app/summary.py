"""What the reference app prints about a run: the per-round table the ServerApp logs, and the
Hydra front door's first lines and closing summary (read back from the run's folder, after
the simulation has ended, so they are the last thing on the screen)."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flwr_stellar.ledger.amounts import format_amount

COLUMNS = (
    ("replies_accepted", "accepted", "{:.0f}"),
    ("replies_rejected", "rejected", "{:.0f}"),
    ("dlc_paid", "DLC paid", "{:.2f}"),
    ("train_loss", "train loss", "{:.4f}"),
    ("central_loss", "test loss", "{:.4f}"),
    ("central_accuracy", "test accuracy", "{:.2%}"),
    ("attack_success_rate", "backdoor success", "{:.1%}"),
    ("privacy_epsilon", "DP epsilon", "{:.4g}"),  # spent so far (LedgerStrategy privacy=...)
    ("elapsed_s", "elapsed s", "{:.1f}"),
)
WIDTH = 100
REJECTED_PREFIX = "rejected_"  # LedgerStrategy's per-reason counts in a round's metrics


def rounds_table(rounds: Mapping[int, Mapping[str, float]]) -> Table:
    """One row a round (0 = before training), the columns some round has."""
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
    return table


def _console(buf: io.StringIO) -> Console:
    return Console(file=buf, width=WIDTH, force_terminal=False, color_system=None)


def render_summary(rounds: Mapping[int, Mapping[str, float]], out: Path) -> str:
    buf = io.StringIO()
    console = _console(buf)
    console.print(rounds_table(rounds))
    console.print(f"outputs: {out}  (metrics.json, model.pt)")
    return "\n" + buf.getvalue()


def render_header(
    run_config: Mapping[str, Any], num_supernodes: int, out: Path, log_file: Path
) -> str:
    """The first lines of a run: what runs, who attacks, what is paid, where it all goes."""
    c = run_config
    lines = [
        f"flwr-stellar reference app: {c.get('strategy.name')} on {num_supernodes} simulated "
        f"nodes, {c.get('num_rounds')} rounds, {c.get('dataset.name')} / {c.get('model.name')}, "
        f"seed {c.get('seed')}"
    ]
    kind, nodes = str(c.get("attack.kind", "none")), str(c.get("attack.nodes", ""))
    if kind != "none" and nodes:
        lines.append(f"attackers: node(s) {nodes} ({kind})")
    if c.get("ledger.enabled"):
        lines.append(
            f"rewards: {c.get('reward.budget_per_round')} {c.get('reward.asset_code')} a round "
            f"by {c.get('reward.scorer')}, on the {c.get('ledger.backend')} ledger"
        )
    lines.append(f"outputs: {out}")
    lines.append(f"full log: {log_file}  (this screen shows warnings and one line a round)")
    return "\n".join(lines)


def _read_metrics(out: Path) -> dict[str, Any]:
    path = out / "metrics.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {path}: {err}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path} is not a JSON object")
    return doc


def _rounds(doc: Mapping[str, Any]) -> dict[int, dict[str, float]]:
    rounds: dict[int, dict[str, float]] = {}
    for row in _list(doc, "rounds"):
        if isinstance(row, dict) and isinstance(row.get("round"), int):
            rounds[row["round"]] = {
                k: float(v)
                for k, v in row.items()
                if k != "round" and isinstance(v, int | float) and not isinstance(v, bool)
            }
    return rounds


def _dict(doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _list(doc: Mapping[str, Any], key: str) -> list[Any]:
    value = doc.get(key)
    return value if isinstance(value, list) else []


def _stroops(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def rewards_table(doc: Mapping[str, Any]) -> Table | None:
    """DLC per data provider, attackers included (with what they got: nothing, if screening
    did its job), and the totals of honest nodes and attackers."""
    rewards, roles = _dict(doc, "rewards"), _dict(doc, "roles")
    if not rewards and not roles:
        return None
    code = str(doc.get("asset", "DLC")).split(":")[0]
    table = Table(title=f"{code} per data provider", title_justify="left")
    table.add_column("pseudonym")
    table.add_column("role")
    table.add_column("owed (manifests)", justify="right")
    table.add_column("balance (ledger)", justify="right")
    totals: dict[str, list[int]] = {}
    rows = []
    for pseudonym in sorted(set(rewards) | set(roles)):
        entry = _dict(rewards, pseudonym)
        owed = _stroops(entry.get("owed_stroops")) or 0
        held = _stroops(entry.get("balance_stroops"))
        role = str(roles.get(pseudonym, "?"))
        total = totals.setdefault(role, [0, 0, 0])
        total[0] += 1
        total[1] += owed
        total[2] += held or 0
        rows.append((role != "honest", -owed, pseudonym, role, owed, held))
    for *_, pseudonym, role, owed, held in sorted(rows):
        table.add_row(
            pseudonym[:10] + "…" + pseudonym[-4:],
            role,
            format_amount(owed),
            "-" if held is None else format_amount(held),
        )
    table.add_section()
    for role in sorted(totals, key=lambda r: r != "honest"):
        count, owed, held = totals[role]
        table.add_row(f"all {role}", f"{count} node(s)", format_amount(owed), format_amount(held))
    return table


def _rejections(rounds: Mapping[int, Mapping[str, float]]) -> str:
    counts: dict[str, int] = {}
    for row in rounds.values():
        for key, value in row.items():
            if key.startswith(REJECTED_PREFIX):
                reason = key.removeprefix(REJECTED_PREFIX)
                counts[reason] = counts.get(reason, 0) + int(value)
    if not counts:
        return "rejected replies: none"
    reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
    return f"rejected replies: {sum(counts.values())} ({reasons})"


def audit_lines(doc: Mapping[str, Any], out: Path) -> list[str]:
    """The audit's verdict, its run-wide findings, and every failure."""
    audits = doc.get("audit")
    if not isinstance(audits, list) or not audits:
        if (out / "ledger.db").is_file():
            return [f"audit: not recorded in metrics.json; run `flwr-stellar audit {out}`"]
        return ["audit: not run (no embedded ledger in the run folder)"]
    lines = []
    for audit in audits:
        if not isinstance(audit, dict):
            continue
        findings = [f for f in _list(audit, "findings") if isinstance(f, dict)]
        rounds = _list(audit, "rounds")
        verdict = "PASS" if audit.get("passed") is True else "FAIL"
        lines.append(
            f"audit of run {audit.get('run_id')}: {verdict} ({len(findings)} checks over "
            f"{len(rounds)} round(s) against the manifests and the ledger)"
        )
        for f in findings:
            if f.get("round") is None or not f.get("ok"):
                where = "" if f.get("round") is None else f"round {f.get('round')} "
                mark = "pass" if f.get("ok") else "FAIL"
                lines.append(f"  {mark}  {where}{f.get('check')}: {f.get('detail')}")
    return lines


def render_run_summary(out: Path, log_file: Path) -> str:
    """The closing screen of a run: per-round table, coins per data provider (honest vs
    attacker), rejections, the audit's verdict, and where the report, log and ledger are."""
    doc = _read_metrics(out)
    rounds = _rounds(doc)
    buf = io.StringIO()
    console = _console(buf)
    console.print(rounds_table(rounds))
    rewards = rewards_table(doc)
    if rewards is not None:
        console.print(rewards)
    console.print(_rejections(rounds))
    if (dp := _dict(doc, "privacy")).get("epsilon"):  # what the last manifest states
        console.print(
            f"differential privacy ({dp.get('mechanism')}): "
            f"epsilon {dp['epsilon']} at delta {dp.get('delta')}",
            markup=False,
        )
    for line in audit_lines(doc, out):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    pending = doc.get("pending_rounds")
    if isinstance(pending, list) and pending:
        console.print(
            f"{len(pending)} round(s) still to pay: `flwr-stellar payouts settle {out}`",
            markup=False,
        )
    ledger = _dict(doc, "ledger")
    paths: list[tuple[str, object]] = [("report", out / "report.html"), ("full log", log_file)]
    if ledger.get("location"):
        paths.append(("ledger", f"{ledger['location']} ({ledger.get('backend', '?')})"))
    paths.append(("metrics", f"{out / 'metrics.json'}, model {out / 'model.pt'}"))
    for name, where in paths:
        console.print(f"{name + ':':<10}{where}", markup=False, highlight=False, soft_wrap=True)
    return "\n" + buf.getvalue()
