"""The report of a sweep: one page comparing the jobs of a Hydra multirun folder (or any folder
of run folders): final accuracy, coins to attackers vs honest providers, rejections, and seconds
per round with each job's overhead relative to the fastest.
"""

from __future__ import annotations

import csv
import itertools
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flwr_stellar.ledger.amounts import stroops_to_units
from flwr_stellar.payments.manifest import read_run_manifests
from flwr_stellar.report.html import Figures, esc, page, table
from flwr_stellar.report.run_report import _metrics


@dataclass
class Job:
    """What the sweep page shows of one job."""

    name: str
    path: Path
    status: str
    final_accuracy: float | None
    attack_success_rate: float | None
    honest_coins: float
    attacker_coins: float
    rejected: int
    seconds_per_round: float | None
    config: dict[str, Any] = field(default_factory=dict)
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    num_nodes: int = 0


def _job(path: Path, root: Path) -> Job:
    metrics = _metrics(path)
    rounds = metrics.get("rounds", []) if isinstance(metrics.get("rounds"), list) else []
    accuracies = [r["central_accuracy"] for r in rounds if "central_accuracy" in r]
    asr = [r["attack_success_rate"] for r in rounds if "attack_success_rate" in r]
    elapsed = [r["elapsed_s"] for r in rounds if "elapsed_s" in r]
    per_round = [b - a for a, b in itertools.pairwise(elapsed[1:])]
    roles = metrics.get("roles", {}) if isinstance(metrics.get("roles"), dict) else {}
    honest = attackers = 0
    for m in read_run_manifests(path, metrics.get("run_id")):
        for who, amount in m.payments():
            if roles.get(who) == "attacker":
                attackers += amount
            else:
                honest += amount
    reasons: dict[str, int] = {}
    for r in rounds:
        for key, value in r.items():
            if key.startswith("rejected_") and isinstance(value, int | float):
                reasons[key[len("rejected_") :]] = reasons.get(key[len("rejected_") :], 0) + int(
                    value
                )
    config = metrics.get("config", {}) if isinstance(metrics.get("config"), dict) else {}
    return Job(
        name=str(path.relative_to(root)),
        path=path,
        status=str(metrics.get("status", "?")),
        final_accuracy=accuracies[-1] if accuracies else None,
        attack_success_rate=asr[-1] if asr else None,
        honest_coins=stroops_to_units(honest),
        attacker_coins=stroops_to_units(attackers),
        rejected=int(sum(r.get("replies_rejected", 0) for r in rounds)),
        seconds_per_round=statistics.median(per_round) if per_round else None,
        config=config,
        rejects_by_reason=reasons,
        num_nodes=len(roles),
    )


CSV_COLUMNS = (
    "job",
    "status",
    "strategy",
    "attack",
    "attackers",
    "attacker_fraction",
    "seed",
    "scorer",
    "final_accuracy",
    "attack_success_rate",
    "honest_dlc",
    "attacker_dlc",
    "attacker_share",
    "rejected",
    "rejects_by_reason",
    "seconds_per_round",
)


def write_sweep_csv(sweep_dir: Path, output: Path | None = None) -> Path:
    """Write ``summary.csv``: one row per job (its strategy, attack, attacker fraction, seed,
    scorer, final accuracy, DLC to honest nodes and to attackers, rejections by reason).

    Parameters
    ----------
    sweep_dir : Path
        A Hydra multirun folder or any folder of run folders.
    output : Path, optional
        The file (default ``sweep_dir/summary.csv``).
    """
    paths = find_jobs(sweep_dir)
    if not paths:
        raise FileNotFoundError(f"no run folders (with metrics.json) under {sweep_dir}")
    output = output or sweep_dir / "summary.csv"
    with output.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for job in (_job(p, sweep_dir) for p in paths):
            c = job.config
            nodes = [n for n in str(c.get("attack.nodes", "")).split(",") if n.strip()]
            kind = str(c.get("attack.kind", "none")) if nodes else "none"
            total = job.honest_coins + job.attacker_coins
            writer.writerow(
                (
                    job.name,
                    job.status,
                    c.get("strategy.name", ""),
                    kind,
                    len(nodes),
                    f"{len(nodes) / job.num_nodes:.2f}" if job.num_nodes else "",
                    c.get("seed", ""),
                    c.get("reward.scorer", ""),
                    "" if job.final_accuracy is None else f"{job.final_accuracy:.4f}",
                    "" if job.attack_success_rate is None else f"{job.attack_success_rate:.4f}",
                    f"{job.honest_coins:g}",
                    f"{job.attacker_coins:g}",
                    f"{job.attacker_coins / total:.4f}" if total else "",
                    job.rejected,
                    ";".join(f"{k}={v}" for k, v in sorted(job.rejects_by_reason.items())),
                    "" if job.seconds_per_round is None else f"{job.seconds_per_round:.2f}",
                )
            )
    return output


def find_jobs(sweep_dir: Path) -> list[Path]:
    """Run folders (with metrics.json) under ``sweep_dir``, in name order."""
    return sorted(p.parent for p in sweep_dir.glob("**/metrics.json"))


def write_sweep_report(sweep_dir: Path, output: Path | None = None) -> Path:
    """Write ``sweep.html`` comparing the runs under ``sweep_dir``.

    Parameters
    ----------
    sweep_dir : Path
        A Hydra multirun folder (``multirun/<date>/<time>``) or any folder of run folders.
    output : Path, optional
        The page (default ``sweep_dir/sweep.html``).

    Raises
    ------
    FileNotFoundError
        No run folder under ``sweep_dir``.
    """
    paths = find_jobs(sweep_dir)
    if not paths:
        raise FileNotFoundError(f"no run folders (with metrics.json) under {sweep_dir}")
    output = output or sweep_dir / "sweep.html"
    jobs = [_job(p, sweep_dir) for p in paths]
    fastest = min((j.seconds_per_round for j in jobs if j.seconds_per_round), default=None)
    figs = Figures(output.parent, output.stem + "-")
    names = [str(i) for i in range(len(jobs))]
    fig = figs.new(height=3.2)
    ax = fig.add_subplot(1, 2, 1)
    ax.bar(names, [j.final_accuracy or 0 for j in jobs])
    ax.set(xlabel="job", ylabel="final test accuracy", title="accuracy")
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.bar(names, [j.honest_coins for j in jobs], label="honest", color="#4c9a2a")
    ax2.bar(
        names,
        [j.attacker_coins for j in jobs],
        bottom=[j.honest_coins for j in jobs],
        label="attackers",
        color="#b00020",
    )
    ax2.set(xlabel="job", ylabel="coins paid", title="coins: honest vs attackers")
    ax2.legend(fontsize="small")
    figure = figs.html(fig, "jobs", "Final accuracy and coins paid per job (job numbers below)")
    rows = [
        (
            i,
            j.name,
            j.status,
            f"{j.final_accuracy:.2%}" if j.final_accuracy is not None else "-",
            f"{j.attack_success_rate:.1%}" if j.attack_success_rate is not None else "-",
            f"{j.honest_coins:g}",
            f"{j.attacker_coins:g}",
            j.rejected,
            f"{j.seconds_per_round:.2f}" if j.seconds_per_round else "-",
            f"{j.seconds_per_round / fastest:.3f}x" if j.seconds_per_round and fastest else "-",
        )
        for i, j in enumerate(jobs)
    ]
    headers = (
        "job",
        "folder",
        "status",
        "final accuracy",
        "backdoor success",
        "coins honest",
        "coins attackers",
        "rejected replies",
        "s / round",
        "vs fastest",
    )
    links = "".join(
        f"<li><a href='{esc(j.name)}/report.html'>{esc(j.name)}</a></li>"
        for j in jobs
        if (j.path / "report.html").is_file()
    )
    sections = [
        f"<p>Sweep folder <code>{esc(sweep_dir)}</code>: {len(jobs)} runs.</p>",
        figure,
        table(headers, rows),
        f"<h2>Run reports</h2><ul>{links}</ul>" if links else "",
    ]
    output.write_text(page(f"flwr-stellar sweep {sweep_dir.name}", sections))
    return output
