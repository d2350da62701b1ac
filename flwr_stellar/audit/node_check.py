"""``flwr-stellar node check|runs|show KEYSTORE``: a data provider checks how it was treated.

From the node's own journal (beside its keystore) and the ledger alone: per run and round, what
the node signed and sent, what the server's signed receipt says, and what the ledger paid its
pseudonym under the receipt's manifest hash. ``check`` exits 1 naming the round on any of: a
sent reply without a receipt, a receipt the distributor did not sign, a receipt whose manifest
was never anchored by the distributor, a payment below the receipt, a receipt that contradicts
the run's manifest (with ``--run-dir``), or a journal entry whose pseudonym this keystore does
not derive (someone else's journal).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flwr_stellar.audit.evidence import (
    RunEvidence,
    contradictions,
    read_anchors,
    receipt_disputes,
    run_evidence,
)
from flwr_stellar.audit.rpc_window import outside_window_note
from flwr_stellar.client.journal import Journal, journal_path
from flwr_stellar.identity import derive_pseudonym, keystore
from flwr_stellar.identity.passphrase import DEFAULT_ENV, resolve_passphrase
from flwr_stellar.ledger.amounts import format_amount
from flwr_stellar.ledger.base import Ledger
from flwr_stellar.payments.manifest import RoundManifest, read_run_manifests


@dataclass
class NodeFinding:
    run_id: int
    server_round: int | None
    ok: bool
    detail: str


@dataclass
class NodeReport:
    """What ``node check`` found, per run and round."""

    journal: Path
    findings: list[NodeFinding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.findings) and all(f.ok for f in self.findings)

    def add(self, run_id: int, server_round: int | None, ok: bool, detail: str) -> None:
        self.findings.append(NodeFinding(run_id, server_round, ok, detail))

    def render(self) -> str:
        lines = [f"node journal {self.journal}"]
        for f in self.findings:
            where = f"run {f.run_id}" + (f" round {f.server_round}" if f.server_round else "")
            lines.append(f"{'pass' if f.ok else 'FAIL'}  {where}: {f.detail}")
        lines.append("verdict: " + ("PASS" if self.passed else "FAIL"))
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "journal": str(self.journal),
            "passed": self.passed,
            "findings": [f.__dict__ for f in self.findings],
        }


def check_node(
    journal: Journal,
    ledger: Ledger,
    *,
    master: keystore.MasterSecret | None = None,
    run_dir: Path | None = None,
    run_id: int | None = None,
) -> NodeReport:
    """Check every run in a node's journal against the ledger (and a run folder).

    Parameters
    ----------
    journal : Journal
        The node's journal.
    ledger : Ledger
        Where the runs were paid (the embedded file or a Horizon).
    master : MasterSecret, optional
        The node's unlocked keystore: each journaled pseudonym must derive from it.
    run_dir : Path, optional
        The run's published folder: each receipt must agree with its round's manifest.
    run_id : int, optional
        Check this run only (a journal holds every run of the node, paid on many ledgers).
    """
    report = NodeReport(journal.path)
    runs = [r for r in journal.runs() if run_id is None or r == run_id]
    if not runs:
        report.add(run_id or 0, None, False, f"{journal.path} holds no such run")
    for run in runs:
        _check_run(report, run, run_evidence(journal.path, run), ledger, master, run_dir)
    return report


def _check_run(
    report: NodeReport,
    run_id: int,
    found: RunEvidence,
    ledger: Ledger,
    master: keystore.MasterSecret | None,
    run_dir: Path | None,
) -> None:
    if not found.sent:
        report.add(run_id, None, True, "no training reply sent in this run")
        return
    if found.terms is None:
        report.add(run_id, None, False, "no verifiable signed terms in the journal")
        return
    terms = found.terms.terms
    if found.unverifiable:
        report.add(
            run_id,
            None,
            False,
            f"{found.unverifiable} receipt(s) not signed by {terms.distributor}",
        )
    manifests: dict[int, RoundManifest] = {}
    if run_dir is not None:
        manifests = {m.server_round: m for m in read_run_manifests(run_dir, run_id)}
    asset = f"{terms.asset_code}:{terms.asset_issuer}"
    memos = {r.manifest for r in found.receipts}
    anchors = read_anchors(ledger, terms.distributor, memos)
    unanchored = any(not anchors.transactions.get(m) for m in memos)
    window_note = outside_window_note(ledger, terms.distributor) if unanchored else None
    for sent in found.sent:
        r = sent.server_round
        problems = []
        derived = derive_pseudonym(master, run_id, sent.federation) if master else None
        if derived is not None and derived.public_key != sent.pseudonym:
            problems.append(f"pseudonym {sent.pseudonym} is not this keystore's")
        receipt = found.receipt_for(sent)
        if receipt is None:
            report.add(run_id, r, False, f"sent reply {sent.digest[:16]}… has no receipt")
            continue
        if len({x.status + x.reason for x in found.receipts_for(sent)}) > 1:
            problems.append("the distributor signed receipts that disagree")
        if not anchors.transactions.get(receipt.manifest) and window_note is not None:
            problems.append(f"manifest {receipt.manifest[:16]}…: {window_note}")
        elif not anchors.transactions.get(receipt.manifest):
            problems.append(
                f"manifest {receipt.manifest[:16]}… is not anchored by {terms.distributor}"
            )
        elif anchors.foreign.get(receipt.manifest):
            problems.append(
                "also under the manifest's memo: " + "; ".join(anchors.foreign[receipt.manifest])
            )
        else:
            paid = anchors.paid_to(receipt.manifest, sent.pseudonym, asset)
            if paid < receipt.payout:
                problems.append(
                    f"ledger paid {format_amount(paid)}, the receipt says "
                    f"{format_amount(receipt.payout)} {terms.asset_code}"
                )
        if run_dir is not None:
            problems += contradictions(receipt, manifests.get(r), sent)
        else:
            problems += receipt_disputes(receipt, sent)
        detail = "; ".join(problems) or (
            f"{receipt.status}{' (' + receipt.reason + ')' if receipt.reason else ''}, "
            f"paid {format_amount(receipt.payout)} {terms.asset_code} as the receipt says"
        )
        report.add(run_id, r, not problems, detail)


def run_rows(journal: Journal) -> list[dict[str, Any]]:
    """One row per run: pseudonym, replies sent, receipts, accepted, owed by receipts."""
    rows = []
    for run_id in journal.runs():
        found = run_evidence(journal.path, run_id)
        accepted = [r for r in found.receipts if r.status == "accepted"]
        rows.append(
            {
                "run_id": run_id,
                "pseudonym": found.sent[0].pseudonym if found.sent else "",
                "sent": len(found.sent),
                "receipts": len(found.receipts),
                "accepted": len(accepted),
                "paid_by_receipts": sum(r.payout for r in found.receipts),
                "held_by_receipts": sum(r.held for r in found.receipts),
                "asset": found.terms.terms.asset_code if found.terms else "",
            }
        )
    return rows


def round_rows(journal: Journal, run_id: int) -> list[dict[str, Any]]:
    """One row per reply sent in a run, with its receipt."""
    found = run_evidence(journal.path, run_id)
    rows = []
    for sent in found.sent:
        receipt = found.receipt_for(sent)
        rows.append(
            {
                "round": sent.server_round,
                "digest": sent.digest,
                "status": receipt.status if receipt else "no receipt",
                "reason": receipt.reason if receipt else "",
                "score": receipt.score if receipt else None,
                "payout": receipt.payout if receipt else None,
                "held": receipt.held if receipt else None,
                "manifest": receipt.manifest if receipt else "",
            }
        )
    return rows


# ---------------------------------------------------------------------- command line
def _journal(args: argparse.Namespace) -> Journal:
    path = journal_path(args.keystore)
    if not path.is_file():
        print(f"flwr-stellar: no journal beside {args.keystore} (expected {path})", file=sys.stderr)
        raise SystemExit(2)
    return Journal(path)


def _print_table(title: str, rows: list[dict[str, Any]], amounts: tuple[str, ...]) -> None:
    table = Table(title=title, title_justify="left")
    for key in rows[0] if rows else ():
        table.add_column(key)
    for row in rows:
        table.add_row(
            *(
                format_amount(v) if k in amounts and isinstance(v, int) else str(v)
                for k, v in row.items()
            )
        )
    Console(width=160).print(table)


def cmd_runs(args: argparse.Namespace) -> int:
    rows = run_rows(_journal(args))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table("runs in the node's journal", rows, ("paid_by_receipts", "held_by_receipts"))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    journal = _journal(args)
    if args.run_id not in journal.runs():
        print(f"flwr-stellar: run {args.run_id} is not in {journal.path}")
        return 1
    rows = round_rows(journal, args.run_id)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            row["digest"], row["manifest"] = row["digest"][:16], row["manifest"][:16]
        _print_table(f"run {args.run_id}", rows, ("payout", "held"))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from flwr_stellar.ledger.settings import open_existing

    journal = _journal(args)
    passphrase = resolve_passphrase(env=args.passphrase_env, file=args.passphrase_file, prompt=True)
    master = keystore.load(args.keystore, passphrase)
    ledger = open_existing(args.db, args.ledger, args.network_passphrase, args.rpc)
    try:
        report = check_node(
            journal, ledger, master=master, run_dir=args.run_dir, run_id=args.run_id
        )
    finally:
        ledger.close()
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.render())
    return 0 if report.passed else 1


def add_node_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    node = sub.add_parser(
        "node",
        help="a data provider's view: what it sent, its receipts, what the ledger paid",
        description="Read the node's journal beside its keystore: runs, receipts, and a check "
        "of every receipt against the ledger (exit 1 naming the round on a mismatch).",
    )
    nsub = node.add_subparsers(dest="node_command", required=True)

    def verb(name: str, func: Any, help_: str) -> argparse.ArgumentParser:
        p = nsub.add_parser(name, help=help_, description=help_)
        p.add_argument("keystore", type=Path, help="the node's keystore (its journal is beside)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=func)
        parser: argparse.ArgumentParser = p
        return parser

    verb("runs", cmd_runs, "list the runs in the node's journal")
    show = verb("show", cmd_show, "every reply of one run and its receipt")
    show.add_argument("run_id", type=int)
    check = verb(
        "check", cmd_check, "check every receipt against the ledger (exit 1 on any mismatch)"
    )
    where = check.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", type=Path, help="embedded ledger file")
    where.add_argument(
        "--ledger", metavar="URL", help="Horizon URL of the ledger (a URL ending in /rpc: RPC)"
    )
    where.add_argument(
        "--rpc", metavar="URL", help="Stellar RPC URL of the ledger (only its recent window)"
    )
    check.add_argument(
        "--network-passphrase", default="", help="for --ledger, or --rpc (default: the server's)"
    )
    check.add_argument("--run-id", type=int, help="check this run only (default: every run)")
    check.add_argument(
        "--run-dir", type=Path, help="the run's published folder: receipts against its manifests"
    )
    check.add_argument("--passphrase-file", type=Path, help="file holding the passphrase (0600)")
    check.add_argument(
        "--passphrase-env",
        default=DEFAULT_ENV,
        help=f"environment variable with the passphrase (default {DEFAULT_ENV})",
    )
