"""``flwr-stellar audit RUN_DIR``: exit 0 only when every check of every run passes; and
``flwr-stellar ledger round RUN_DIR ROUND``, one round's manifest beside its transactions."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from flwr_stellar.audit.run_audit import AuditReport, audit_run
from flwr_stellar.ledger.cli import add_explorer_command, open_any, to_json
from flwr_stellar.ledger.embedded import EmbeddedLedger
from flwr_stellar.ledger.settings import open_existing


def run_audit_for(
    run_dir: Path,
    *,
    db: Path | None = None,
    url: str | None = None,
    network_passphrase: str = "",
    model: Path | None = None,
    evidence: Path | Sequence[Path] | None = None,
    rpc_url: str | None = None,
) -> list[AuditReport]:
    """Audit ``run_dir`` against its ledger; defaults: ``run_dir/ledger.db`` and
    ``run_dir/model.pt`` when they exist.

    Parameters
    ----------
    run_dir : Path
        The run's folder (with ``manifests/``).
    db, url : Path or str, optional
        The ledger: an embedded file or a Horizon URL (one ending in ``/rpc`` is RPC).
    network_passphrase : str
        The network's passphrase (Horizon; RPC: the server's when empty) or an override
        (file).
    model : Path, optional
        The final model file.
    evidence : Path or sequence of Path, optional
        A folder of node journals (or the journal files) to hold against the manifests.
    rpc_url : str, optional
        A Stellar RPC endpoint instead: it holds only its retention window, and a round
        anchored before it is reported as outside the window, not as unpaid.
    """
    if db is None and url is None and rpc_url is None:
        db = run_dir / "ledger.db"
    if model is None and (run_dir / "model.pt").is_file():
        model = run_dir / "model.pt"
    ledger = open_existing(db, url, network_passphrase, rpc_url)
    try:
        verify = ledger.verify_chain if isinstance(ledger, EmbeddedLedger) else None
        return audit_run(run_dir, ledger, model_file=model, verify_chain=verify, evidence=evidence)
    finally:
        ledger.close()


def cmd_audit(args: argparse.Namespace) -> int:
    reports = run_audit_for(
        args.run_dir,
        db=args.db,
        url=args.ledger,
        network_passphrase=args.network_passphrase,
        model=args.model,
        evidence=args.evidence,
        rpc_url=args.rpc,
    )
    for report in reports:
        print(report.render())
    if args.json is not None:
        args.json.write_text(json.dumps([r.as_dict() for r in reports], indent=2) + "\n")
    return 0 if reports and all(r.passed for r in reports) else 1


def add_audit_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "audit",
        help="check a run's manifests against the ledger (exit 0 only on a full pass)",
        description="Re-derive a run from its manifests, the ledger and the final model: "
        "manifest hashes, chain, budgets, model links, anchors and every payout exactly once. "
        "Needs no keystore and no outbox.",
    )
    p.add_argument("run_dir", type=Path, help="the run's output folder (with manifests/)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--db", type=Path, help="embedded ledger file (default RUN_DIR/ledger.db)")
    where.add_argument(
        "--ledger", metavar="URL", help="Horizon URL of the ledger (a URL ending in /rpc: RPC)"
    )
    where.add_argument(
        "--rpc",
        metavar="URL",
        help="Stellar RPC URL of the ledger; RPC keeps only recent history (~7 days on SDF's "
        "servers): an older anchor is reported as outside its window",
    )
    p.add_argument(
        "--network-passphrase",
        default="",
        help="for --ledger (default: embedded) or --rpc (default: the server's)",
    )
    p.add_argument("--model", type=Path, help="final model file (default RUN_DIR/model.pt)")
    p.add_argument(
        "--evidence",
        type=Path,
        metavar="DIR",
        help="node journals (*.journal, searched recursively): every reply a node sent must "
        "have a receipt that agrees with the manifests",
    )
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the findings as JSON")
    p.set_defaults(func=cmd_audit)


def cmd_round(args: argparse.Namespace) -> int:
    from flwr_stellar.audit import explorer

    if args.ledger is None and args.rpc is None and args.db == Path("ledger.db"):
        args.db = args.run_dir / "ledger.db"  # the run's own embedded ledger by default
    ledger = open_any(args)
    try:
        view = explorer.round_view(ledger, args.run_dir, args.round, args.run_id)
    finally:
        ledger.close()
    print(to_json(view) if args.json else explorer.render_round(view))
    return 0


def add_round_parser(lsub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``flwr-stellar ledger round RUN_DIR ROUND`` to the ledger's commands.

    The command sits with the ledger explorer, where a user looks for it, but is defined here:
    it reads manifests, which the ledger layer must not import.

    Parameters
    ----------
    lsub : argparse._SubParsersAction
        What :func:`flwr_stellar.ledger.cli.add_ledger_parser` returned.
    """
    rnd = add_explorer_command(
        lsub, "round", cmd_round, "a round's manifest and its transactions, decoded"
    )
    rnd.add_argument("run_dir", type=Path)
    rnd.add_argument("round", type=int)
    rnd.add_argument("--run-id", type=int, default=None, help="when the folder has several runs")
