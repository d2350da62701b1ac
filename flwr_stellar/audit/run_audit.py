"""The audit: what anyone holding a run's manifest folder and access to the ledger can check.

Inputs are only the content-addressed manifests, a ledger (the embedded file or any Horizon) and,
optionally, the final model file: no keystore, no outbox, nothing the server could rewrite
without it showing. Per round it checks:

``manifest-file``
    the file's SHA-256 is its name and the bytes are a canonical manifest;
``chain``
    rounds 1..N each have exactly one manifest, each naming the previous one's hash;
``budget``
    payouts and held-back shares are >= 0 and sum to at most the round's budget; releases
    (the last round's) pay out at most what earlier rounds held back;
``model-link``
    the model after round r is the model before round r+1; the last one is the model file;
``anchor``
    a successful transaction from the run's distributor carries the manifest hash as MemoHash;
``payouts``
    the payments under that memo are exactly the manifest's payouts and releases (pseudonym,
    asset, amount), each once: nothing missing, extra or duplicated;

and, for an embedded ledger, ``ledger-chain``: every header hash re-derives.
"""

from __future__ import annotations

import base64
import io
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flwr_stellar.ledger.amounts import format_amount
from flwr_stellar.ledger.base import Ledger
from flwr_stellar.ledger.decode import PaymentOp, decode_envelope, iter_transactions
from flwr_stellar.payments.manifest import MANIFEST_DIR, RoundManifest, scan_manifests

CHECKS = ("manifest-file", "chain", "budget", "model-link", "anchor", "payouts")


@dataclass(frozen=True)
class Finding:
    """One check's outcome.

    Parameters
    ----------
    check : str
        One of ``CHECKS`` or ``ledger-chain``.
    server_round : int or None
        The round it concerns; None for the run as a whole.
    ok : bool
        Whether the check passed.
    detail : str
        What differs (names the object), or what was checked.
    """

    check: str
    server_round: int | None
    ok: bool
    detail: str = ""


@dataclass
class AuditReport:
    """The audit of one run.

    Parameters
    ----------
    run_id : int or None
        Flower run id (None when no manifest could be read).
    rounds : list[int]
        Rounds found in the manifests.
    findings : list[Finding]
        Every check's outcome.
    """

    run_id: int | None
    rounds: list[int] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.findings) and all(f.ok for f in self.findings)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def add(self, check: str, server_round: int | None, ok: bool, detail: str = "") -> None:
        self.findings.append(Finding(check, server_round, ok, detail))

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "passed": self.passed,
            "rounds": self.rounds,
            "findings": [
                {"check": f.check, "round": f.server_round, "ok": f.ok, "detail": f.detail}
                for f in self.findings
            ],
        }

    def render(self) -> str:
        """A pass/fail table per round and check, then every failure with its detail."""
        table = Table(title=f"audit of run {self.run_id}", title_justify="left")
        table.add_column("round", justify="right")
        for check in CHECKS:
            table.add_column(check)
        cells: dict[tuple[int | None, str], bool] = {}
        for f in self.findings:
            key = (f.server_round, f.check)
            cells[key] = cells.get(key, True) and f.ok
        for server_round in self.rounds:
            table.add_row(
                str(server_round),
                *(
                    "-"
                    if (server_round, c) not in cells
                    else "pass"
                    if cells[(server_round, c)]
                    else "FAIL"
                    for c in CHECKS
                ),
            )
        buf = io.StringIO()
        console = Console(file=buf, width=120, force_terminal=False, color_system=None)
        console.print(table)
        for f in self.findings:
            if f.server_round is None:
                console.print(f"{'pass' if f.ok else 'FAIL'}  {f.check}: {f.detail}")
        for f in self.failures:
            if f.server_round is not None:
                console.print(f"FAIL  round {f.server_round} {f.check}: {f.detail}")
        console.print("verdict: " + ("PASS" if self.passed else "FAIL"))
        return buf.getvalue()


def model_file_hash(path: Path) -> str:
    """The manifests' hash of a model file saved with ``torch.save(state_dict)``."""
    import torch
    from flwr.app import ArrayRecord

    from flwr_stellar.protocol.digest import array_record_hash

    state = torch.load(path, map_location="cpu", weights_only=True)
    return array_record_hash(ArrayRecord(state))


def _read_manifests(directory: Path, reports: dict[int | None, AuditReport]) -> list[RoundManifest]:
    """The sound manifests in ``directory``; every other file fails ``manifest-file``, by name."""
    manifests = []
    orphans = reports.setdefault(None, AuditReport(None))
    for file in scan_manifests(directory):
        if file.problem or file.manifest is None:
            orphans.add("manifest-file", None, False, f"{file.path.name}: {file.problem}")
            continue
        manifests.append(file.manifest)
    return manifests


def _check_run(
    report: AuditReport,
    manifests: list[RoundManifest],
    ledger: Ledger,
    model_hash: str | None,
) -> None:
    by_round: dict[int, list[RoundManifest]] = defaultdict(list)
    for m in manifests:
        by_round[m.server_round].append(m)
    report.rounds = sorted(by_round)
    last = max(by_round)
    chosen: dict[int, RoundManifest] = {}
    for r in range(1, last + 1):
        found = by_round.get(r, [])
        if len(found) != 1:
            what = "no manifest" if not found else f"{len(found)} manifests claim this round"
            report.add("chain", r, False, what + ": " + ", ".join(m.hash()[:16] for m in found))
            if r not in report.rounds:
                report.rounds.append(r)
            continue
        chosen[r] = found[0]
        report.add("manifest-file", r, True, found[0].hash())
    report.rounds.sort()
    pool = 0  # rewards held back so far, for the releases of the last round
    for r, m in sorted(chosen.items()):
        if r == 1:
            ok, want = m.previous == "", ""
        else:
            want = chosen[r - 1].hash() if r - 1 in chosen else "(round missing)"
            ok = m.previous == want
        report.add(
            "chain",
            r,
            ok,
            "links to the previous manifest"
            if ok
            else f"previous is {m.previous!r}, expected {want!r} (manifest {m.hash()})",
        )
        paid = m.round_paid + m.total_held
        negative = [c.pseudonym for c in m.contributions if c.payout < 0 or c.held < 0]
        negative += [x.pseudonym for x in m.releases if x.amount < 0]
        pool += m.total_held
        released = sum(x.amount for x in m.releases)
        ok = paid <= m.budget and not negative and released <= pool
        report.add(
            "budget",
            r,
            ok,
            f"paid {format_amount(m.round_paid)} and held {format_amount(m.total_held)} of "
            f"{format_amount(m.budget)}"
            + (
                f"; released {format_amount(released)} of {format_amount(pool)} held"
                if m.releases
                else ""
            )
            + (f"; negative amounts to {negative}" if negative else ""),
        )
        pool -= released
        nxt = chosen.get(r + 1)
        if nxt is not None and m.model_after:
            ok = m.model_after == nxt.model_before
            report.add(
                "model-link",
                r,
                ok,
                "model after = model before next round"
                if ok
                else f"model after {m.model_after} != round {r + 1}'s model before "
                f"{nxt.model_before}",
            )
    finals = [m for _, m in sorted(chosen.items()) if m.model_after]
    if model_hash is not None and finals:
        final = finals[-1]
        ok = final.model_after == model_hash
        report.add(
            "model-link",
            final.server_round,
            ok,
            "final model file matches"
            if ok
            else f"final model file hashes to {model_hash}, manifest says {final.model_after}",
        )
    _check_ledger(report, chosen, ledger)


def _check_ledger(report: AuditReport, chosen: dict[int, RoundManifest], ledger: Ledger) -> None:
    distributors = {m.distributor for m in chosen.values()}
    if len(distributors) != 1 or "" in distributors:
        report.add("anchor", None, False, f"manifests name distributors {sorted(distributors)}")
        return
    (distributor,) = distributors
    wanted = {m.hash(): r for r, m in chosen.items()}
    anchors: dict[str, list[str]] = defaultdict(list)
    paid: dict[str, Counter[PaymentOp]] = defaultdict(Counter)
    foreign: dict[str, list[str]] = defaultdict(list)
    for record in iter_transactions(ledger, distributor):
        if record.memo_type != "hash" or not record.memo or not record.successful:
            continue
        memo = base64.b64decode(record.memo).hex()
        if memo not in wanted:
            continue
        source, payments, others = decode_envelope(record)
        if source != distributor:
            foreign[memo].append(f"transaction {record.hash} from {source}")
            continue
        anchors[memo].append(record.hash)
        paid[memo].update(payments)
        foreign[memo].extend(f"{o} in {record.hash}" for o in others)
    for digest, r in sorted(wanted.items(), key=lambda kv: kv[1]):
        m = chosen[r]
        if not anchors[digest]:
            report.add(
                "anchor",
                r,
                False,
                f"no successful transaction from {distributor} carries MemoHash {digest}",
            )
        else:
            report.add(
                "anchor",
                r,
                not foreign[digest],
                ", ".join(anchors[digest])
                if not foreign[digest]
                else "also under this memo: " + "; ".join(foreign[digest]),
            )
        expected = Counter((who, m.asset, amount) for who, amount in m.payments())
        got = paid[digest]
        missing, extra = expected - got, got - expected
        problems = [
            f"missing payment of {format_amount(a)} {asset.split(':')[0]} to {dest}"
            + (f" (x{n})" if n > 1 else "")
            for (dest, asset, a), n in sorted(missing.items())
        ] + [
            f"extra payment of {format_amount(a)} {asset} to {dest}" + (f" (x{n})" if n > 1 else "")
            for (dest, asset, a), n in sorted(extra.items())
        ]
        report.add(
            "payouts",
            r,
            not problems,
            "; ".join(problems) or f"{sum(expected.values())} payments, each exactly once",
        )


def audit_run(
    run_dir: Path,
    ledger: Ledger,
    *,
    model_file: Path | None = None,
    verify_chain: Callable[[], int] | None = None,
) -> list[AuditReport]:
    """Audit every run whose manifests are in ``run_dir/manifests``.

    Parameters
    ----------
    run_dir : Path
        A run's output folder (or any folder with a ``manifests/`` store).
    ledger : Ledger
        Where the run was anchored: an EmbeddedLedger or a HorizonLedger.
    model_file : Path, optional
        The final model (``torch.save`` of a state dict); checked against the last manifest.
    verify_chain : callable, optional
        The embedded ledger's header-chain verification (raises when broken).

    Returns
    -------
    list[AuditReport]
        One per run id found, plus one (run id None) if some files could not be read.
    """
    directory = run_dir / MANIFEST_DIR
    reports: dict[int | None, AuditReport] = {}
    if not directory.is_dir():
        report = AuditReport(None)
        report.add("manifest-file", None, False, f"{directory} does not exist")
        return [report]
    manifests = _read_manifests(directory, reports)
    model_hash = model_file_hash(model_file) if model_file is not None else None
    runs: dict[int, list[RoundManifest]] = defaultdict(list)
    for m in manifests:
        runs[m.run_id].append(m)
    for run_id, run_manifests in sorted(runs.items()):
        report = reports.setdefault(run_id, AuditReport(run_id))
        _check_run(report, run_manifests, ledger, model_hash)
    if not runs:
        reports.setdefault(None, AuditReport(None)).add(
            "manifest-file", None, False, f"no readable manifest in {directory}"
        )
    orphans = reports.pop(None, None)
    out = [r for _, r in sorted(reports.items(), key=lambda kv: kv[0] or 0)]
    if verify_chain is not None:
        try:
            count = verify_chain()
            finding = Finding("ledger-chain", None, True, f"{count} ledger headers re-derived")
        except Exception as err:  # ChainError or a damaged database
            finding = Finding("ledger-chain", None, False, str(err))
        for r in out or [orphans or AuditReport(None)]:
            r.findings.append(finding)
    if orphans is not None and orphans.findings:
        for r in out:  # an unreadable file in the store fails every run's audit
            r.findings.extend(orphans.findings)
        if not out:
            out.append(orphans)
    return out
