"""The audit: what anyone holding a run's manifest folder and access to the ledger can check.

Inputs are only the content-addressed manifests, a ledger (the embedded file or any Horizon) and,
optionally, the final model file: no keystore, no outbox, nothing the server could rewrite
without it showing. Per round it checks:

``manifest-file``
    the file's SHA-256 is its name and the bytes are a canonical manifest;
``terms``
    the run's signed terms (``RUN_DIR/terms/``) are signed by the distributor every manifest
    names, are the terms every manifest cites, and set each round's budget and asset;
``chain``
    rounds 1..N each have exactly one manifest, each naming the previous one's hash; with
    signed terms, N is the number of rounds they promise (a missing round is named);
``budget``
    payouts and held-back shares are >= 0 and sum to at most the round's budget; releases
    (the last round's) pay out at most what earlier rounds held back;
``split``
    each round's payouts and held-back shares are exactly the budget split of the manifest's
    own scores (largest remainder, as the server splits), the last round's releases exactly
    the split of everything held by held x trust; for counting scorers (``flat``,
    ``num-examples``) each score is recomputed from the claims and the stated trust;
``model-link``
    the model after round r is the model before round r+1; the last one is the model file;
``anchor``
    a successful transaction from the run's distributor carries the manifest hash as MemoHash;
``payouts``
    the payments under that memo are exactly the manifest's payouts and releases (pseudonym,
    asset, amount), each once: nothing missing, extra or duplicated;
``privacy`` (runs with differential privacy only)
    every round states the same mechanism and parameters; each round's release (effective noise
    multiplier from the claims of the contributions it aggregated, sampling rate) and the
    epsilon after it are recomputed from the manifests alone (:mod:`flwr_stellar.privacy`) and
    must be what the manifest states;

``evidence`` (with node journals, ``audit RUN_DIR --evidence DIR``)
    every training reply a node journaled as sent has a receipt signed by the distributor,
    the receipt names the round's manifest and agrees with it (a contribution paid as the
    receipt says, or a rejection with the receipt's reason), a ``bad-signature`` receipt does
    not cite a digest the node's own signature verifies over, and the node accepted the terms
    the manifests cite; a reply without a receipt is reported as unacknowledged;

and, for an embedded ledger, ``ledger-chain``: every header hash re-derives. What this cannot
re-derive is in :mod:`flwr_stellar.audit.evidence`.
"""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flwr_stellar.audit.evidence import (
    contradictions,
    journals_under,
    read_anchors,
    run_evidence,
)
from flwr_stellar.audit.rpc_window import outside_window_note
from flwr_stellar.ledger.amounts import format_amount
from flwr_stellar.ledger.base import Ledger
from flwr_stellar.payments.amounts import split_budget
from flwr_stellar.payments.manifest import (
    FORMAT,
    MANIFEST_DIR,
    Contribution,
    RoundManifest,
    scan_manifests,
)
from flwr_stellar.payments.terms_store import load_terms
from flwr_stellar.privacy import epsilon, round_step
from flwr_stellar.protocol.errors import RecordError
from flwr_stellar.protocol.terms import SignedTerms

CHECKS = (
    "manifest-file",
    "terms",
    "chain",
    "budget",
    "split",
    "model-link",
    "anchor",
    "payouts",
    "evidence",
    "privacy",
)
OPTIONAL_CHECKS = ("privacy",)  # a column of the table only in runs that have them
COUNTING: dict[str, Callable[[Contribution], int]] = {
    "flat": lambda c: 1,
    "num-examples": lambda c: max(0, c.num_examples),
}


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
        present = {f.check for f in self.findings}
        checks = [c for c in CHECKS if c not in OPTIONAL_CHECKS or c in present]
        for check in checks:
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
                    for c in checks
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


def _check_terms(
    report: AuditReport, run_dir: Path, manifests: list[RoundManifest]
) -> SignedTerms | None:
    """The ``terms`` check; the verified terms when the manifests cite sound ones."""
    cited = {m.terms for m in manifests}
    if cited == {""} and all(m.format != FORMAT for m in manifests):
        report.add("terms", None, True, "manifests before format v5 cite no signed terms")
        return None
    if "" in cited:
        report.add("terms", None, False, f"a format-{FORMAT[-2:]} manifest cites no signed terms")
        return None
    if len(cited) != 1:
        report.add("terms", None, False, f"manifests cite {len(cited)} different terms")
        return None
    (digest,) = cited
    try:
        signed = load_terms(run_dir, digest)
    except RecordError as err:
        report.add("terms", None, False, f"terms {digest[:16]}…: {err}")
        return None
    t = signed.terms
    problems = []
    if {m.distributor for m in manifests} != {t.distributor}:
        problems.append(f"signed by {t.distributor}, manifests name another distributor")
    if report.run_id is not None and t.run_id != report.run_id:
        problems.append(f"terms of run {t.run_id}")
    report.add(
        "terms",
        None,
        not problems,
        "; ".join(problems)
        or f"signed by the distributor: {t.num_rounds} rounds, "
        f"{format_amount(t.budget_stroops)} {t.asset_code} a round "
        f"({format_amount(t.held_stroops)} held), scorer {t.scorer}",
    )
    if problems:
        return None
    for m in manifests:
        asset = f"{t.asset_code}:{t.asset_issuer}"
        wrong = [
            f"{name} {got}, the signed terms say {want}"
            for name, got, want in (
                ("budget", m.budget, t.budget_stroops),
                ("asset", m.asset, asset),
                ("settings", m.config_hash, t.settings_hash),
                ("scorer", m.scoring.get("name", t.scorer), t.scorer),
            )
            if got != want
        ]
        report.add("terms", m.server_round, not wrong, "; ".join(wrong) or "as signed")
    return signed


def _check_split(
    report: AuditReport, chosen: dict[int, RoundManifest], terms: SignedTerms | None
) -> None:
    """The ``split`` check: payouts, held shares and releases re-derived from the scores."""
    held_total: dict[str, int] = defaultdict(int)
    quantum = terms.terms.quantum_stroops if terms is not None else 1
    for r, m in sorted(chosen.items()):
        payable = {c.pseudonym: c.score for c in m.contributions if not c.note}
        if terms is not None:
            held_budget = terms.terms.held_stroops if any(payable.values()) else 0
        else:
            held_budget = m.total_held  # before v5 the held fraction was not stated
        problems = []
        if held_budget > m.budget or any(s < 0 for s in payable.values()):
            problems.append("held share or scores out of range")
        else:
            payouts = split_budget(m.budget - held_budget, payable, quantum)
            held = split_budget(held_budget, payable, quantum)
            for c in m.contributions:
                want = (payouts.get(c.pseudonym, 0), held.get(c.pseudonym, 0))
                if (c.payout, c.held) != want:
                    problems.append(
                        f"{c.pseudonym} paid {c.payout} held {c.held}, its score gives "
                        f"{want[0]} and {want[1]}"
                    )
        count = COUNTING.get(str(m.scoring.get("name", "")))
        if "failed" in m.scoring and any(c.score or c.payout for c in m.contributions):
            problems.append("a failed scorer pays nobody, yet scores or payouts are not 0")
        if count is not None and "failed" not in m.scoring:
            problems += [
                f"{c.pseudonym} scored {c.score}, its claim gives {count(c) * c.reputation_ppm}"
                for c in m.contributions
                if c.score != count(c) * c.reputation_ppm
            ]
        for c in m.contributions:
            held_total[c.pseudonym] += c.held
        if m.releases or (terms is not None and r == terms.terms.num_rounds):
            problems += _release_problems(m, held_total, quantum)
        report.add(
            "split",
            r,
            not problems,
            "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
            or "payouts and held shares are the exact split of the scores"
            + (" (scores recomputed from the claims)" if count is not None else ""),
        )


def _release_problems(m: RoundManifest, held_total: dict[str, int], quantum: int = 1) -> list[str]:
    pool = sum(held_total.values())
    owed = {p for p, amount in held_total.items() if amount > 0}
    released = {x.pseudonym: x for x in m.releases}
    if not m.releases:
        return [f"{format_amount(pool)} held back, never released"] if pool else []
    if set(released) != owed:
        return [f"releases name {sorted(released)}, held shares belong to {sorted(owed)}"]
    want = split_budget(
        pool, {p: held_total[p] * x.reputation_ppm for p, x in released.items()}, quantum
    )
    return [
        f"release to {p} is {x.amount}, held x trust gives {want[p]}"
        for p, x in released.items()
        if x.amount != want[p]
    ]


def _check_evidence(
    report: AuditReport,
    chosen: dict[int, RoundManifest],
    terms: SignedTerms | None,
    evidence: Path | Sequence[Path],
) -> None:
    """The ``evidence`` check: every node journal under ``evidence`` against the manifests."""
    journals = journals_under(evidence) if isinstance(evidence, Path) else sorted(evidence)
    if not journals:
        report.add("evidence", None, False, f"no node journal (*.journal) under {evidence}")
        return
    assert report.run_id is not None
    nodes = 0
    pools = {r: Counter((x.reason, x.pseudonym) for x in m.rejections) for r, m in chosen.items()}
    for path in journals:
        try:
            found = run_evidence(path, report.run_id)
        except Exception as err:  # a journal is the node's file: unreadable is its finding
            report.add("evidence", None, False, f"{path.name}: unreadable journal: {err!r}"[:300])
            continue
        if found.terms is None and not found.sent:
            continue  # this node was not in the run
        nodes += 1
        if terms is not None and (found.terms is None or found.terms.digest != terms.digest):
            report.add(
                "evidence",
                None,
                False,
                f"{path.name}: the node accepted other terms than the manifests cite",
            )
        for sent in found.sent:
            receipt = found.receipt_for(sent)
            r = sent.server_round
            if receipt is None:
                report.add(
                    "evidence",
                    r,
                    False,
                    f"{sent.who}: reply {sent.digest[:16]}… unacknowledged (no receipt)",
                )
                continue
            problems = contradictions(receipt, chosen.get(r), sent, pools.get(r))
            if len({x.status + x.reason for x in found.receipts_for(sent)}) > 1:
                problems.append("the distributor signed receipts that disagree")
            agreed = f"receipt {receipt.status}, as manifested"
            report.add("evidence", r, not problems, f"{sent.who}: {'; '.join(problems) or agreed}")
    report.add("evidence", None, True, f"{nodes} node journal(s) of this run read")


def _check_run(
    report: AuditReport,
    manifests: list[RoundManifest],
    ledger: Ledger,
    model_hash: str | None,
    run_dir: Path | None = None,
    evidence: Path | Sequence[Path] | None = None,
) -> None:
    terms = _check_terms(report, run_dir, manifests) if run_dir is not None else None
    by_round: dict[int, list[RoundManifest]] = defaultdict(list)
    for m in manifests:
        by_round[m.server_round].append(m)
    report.rounds = sorted(by_round)
    last = max(by_round)
    if terms is not None:
        promised = terms.terms.num_rounds
        for r in sorted(x for x in by_round if x > promised):
            report.add("chain", r, False, f"the signed terms promise {promised} rounds")
        last = max(last, promised)
    chosen: dict[int, RoundManifest] = {}
    for r in range(1, last + 1):
        found = by_round.get(r, [])
        if len(found) != 1:
            what = "no manifest" if not found else f"{len(found)} manifests claim this round"
            if not found and terms is not None:
                what += f" (the signed terms promise {terms.terms.num_rounds} rounds)"
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
    _check_split(report, chosen, terms)
    _check_privacy(report, chosen)
    _check_ledger(report, chosen, ledger)
    if evidence is not None:
        _check_evidence(report, chosen, terms, evidence)


EPSILON_TOLERANCE = 1e-5  # relative: the statement carries six significant digits


def _same(stated: str, recomputed: float, tolerance: float = 1e-9) -> bool:
    value = float(stated)
    return abs(value - recomputed) <= tolerance * max(1.0, abs(recomputed))


def _check_privacy(report: AuditReport, chosen: dict[int, RoundManifest]) -> None:
    """The ``privacy`` check: each round's release and the epsilon so far, recomputed from the
    manifests (the parameters they state, the claims of what each round aggregated)."""
    stated = {r: m.privacy for r, m in chosen.items() if m.privacy is not None}
    if not stated:
        return  # a run without differential privacy
    first = stated[min(stated)]
    assert first is not None
    settings = first.settings()
    constant = (
        *("mechanism", "noise_multiplier", "clipping_norm", "num_sampled", "delta"),
        *("sampling", "accountant"),
    )
    steps: list[tuple[float, float]] = []
    for r, m in sorted(chosen.items()):
        s = m.privacy
        if s is None:
            report.add("privacy", r, False, "states no privacy, while the run's other rounds do")
            continue
        problems = [
            f"{name} {getattr(s, name)!r}, round {min(stated)} states {getattr(first, name)!r}"
            for name in constant
            if getattr(s, name) != getattr(first, name)
        ]
        released = bool(m.model_after) and bool(m.contributions)
        weights = [c.num_examples for c in m.contributions] if released else []
        step = round_step(settings, weights, s.sampled, s.population)
        if step is not None:
            steps.append(step)
        if s.sampled > s.population or len(m.contributions) > s.sampled:
            problems.append(
                f"{len(m.contributions)} contributions from {s.sampled} sampled of "
                f"{s.population} nodes"
            )
        got = s.step()
        if (got is None) != (step is None) or (
            got is not None
            and step is not None
            and not (_same(s.effective_noise_multiplier, step[0]) and _same(s.sample_rate, step[1]))
        ):
            want = "no release" if step is None else f"noise multiplier {step[0]!r}, q {step[1]!r}"
            have = "no release" if got is None else f"{got[0]!r}, q {got[1]!r}"
            problems.append(f"states {have}; its contributions give {want}")
        if s.releases != len(steps):
            problems.append(f"states {s.releases} releases, the manifests give {len(steps)}")
        spent = epsilon(steps, settings.delta)
        if not _same(s.epsilon, spent, EPSILON_TOLERANCE):
            problems.append(f"states epsilon {s.epsilon}, its parameters give {spent:.6g}")
        report.add(
            "privacy",
            r,
            not problems,
            "; ".join(problems)
            or f"epsilon {s.epsilon} at delta {s.delta} after {s.releases} release(s) "
            f"({s.mechanism}), recomputed",
        )


def _check_ledger(report: AuditReport, chosen: dict[int, RoundManifest], ledger: Ledger) -> None:
    distributors = {m.distributor for m in chosen.values()}
    if len(distributors) != 1 or "" in distributors:
        report.add("anchor", None, False, f"manifests name distributors {sorted(distributors)}")
        return
    (distributor,) = distributors
    wanted = {m.hash(): r for r, m in chosen.items()}
    found = read_anchors(ledger, distributor, wanted)
    anchors, paid, foreign = found.transactions, found.paid, found.foreign
    # through Stellar RPC an anchor missing from its window may just be older than it
    unanchored = any(not anchors[digest] for digest in wanted)
    window_note = outside_window_note(ledger, distributor) if unanchored else None
    for digest, r in sorted(wanted.items(), key=lambda kv: kv[1]):
        m = chosen[r]
        if not anchors[digest] and window_note is not None:
            report.add("anchor", r, False, f"manifest {digest}: {window_note}")
            report.add("payouts", r, False, f"not checked: {window_note}")
            continue
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
    evidence: Path | Sequence[Path] | None = None,
) -> list[AuditReport]:
    """Audit every run whose manifests are in ``run_dir/manifests``.

    Parameters
    ----------
    run_dir : Path
        A run's output folder (or any folder with a ``manifests/`` store).
    ledger : Ledger
        Where the run was anchored: an EmbeddedLedger, a HorizonLedger or an RpcLedger
        (whose retention window may not reach the run: rounds it cannot show are reported
        as outside the window, not as unpaid).
    model_file : Path, optional
        The final model (``torch.save`` of a state dict); checked against the last manifest.
    verify_chain : callable, optional
        The embedded ledger's header-chain verification (raises when broken).
    evidence : Path or sequence of Path, optional
        A folder of node journals (``*.journal``, searched recursively), or the journal files
        themselves: the ``evidence`` check holds each against the manifests.

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
        _check_run(report, run_manifests, ledger, model_hash, run_dir, evidence)
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
