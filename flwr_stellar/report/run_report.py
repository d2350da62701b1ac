"""The report of one run: ``flwr-stellar report RUN_DIR [-o report.html]``.

It reads what a run leaves behind (``manifests/``, and when present the reference app's
``metrics.json``), runs the audit when the ledger is at hand, and writes one self-contained page
with accuracy/loss, coins per pseudonym over time, accepted/rejected replies by reason and the
score distribution per round, plus the rounds with their manifest and transaction hashes. The
PNGs are written beside the page too.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from flwr_stellar.audit.run_audit import AuditReport
from flwr_stellar.ledger.amounts import format_amount, stroops_to_units
from flwr_stellar.payments.manifest import RoundManifest, read_run_manifests
from flwr_stellar.report.html import Figures, esc, json_scalar, page, round_axis, short, table


def _metrics(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "metrics.json"
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _accuracy_figure(figs: Figures, rounds: list[dict[str, Any]]) -> str:
    xs = [r["round"] for r in rounds if "central_accuracy" in r]
    if not xs:
        return "<p class='note'>No central evaluation in this run.</p>"
    fig = figs.new()
    ax = fig.add_subplot(1, 2, 1)
    ax.plot(xs, [r["central_accuracy"] for r in rounds if "central_accuracy" in r], marker="o")
    ax.set(xlabel="round", ylabel="test accuracy", title="accuracy")
    round_axis(ax)
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.plot(
        xs, [r["central_loss"] for r in rounds if "central_loss" in r], marker="o", label="test"
    )
    train = [(r["round"], r["train_loss"]) for r in rounds if "train_loss" in r]
    if train:
        ax2.plot(*zip(*train, strict=True), marker=".", label="train")
    ax2.set(xlabel="round", ylabel="loss", title="loss")
    round_axis(ax2)
    ax2.legend()
    return figs.html(fig, "accuracy", "Central test accuracy and loss per round")


def _coins_figure(figs: Figures, manifests: list[RoundManifest], code: str) -> str:
    totals: dict[str, list[float]] = defaultdict(list)
    pseudonyms = sorted({c.pseudonym for m in manifests for c in m.contributions})
    running = dict.fromkeys(pseudonyms, 0)
    for m in manifests:
        for who, amount in m.payments():
            running[who] = running.get(who, 0) + amount
        for p in pseudonyms:
            totals[p].append(stroops_to_units(running[p]))
    fig = figs.new()
    ax = fig.add_subplot()
    rounds = [0, *(m.server_round for m in manifests)]
    for p in pseudonyms:
        ax.plot(rounds, [0.0, *totals[p]], marker=".", label=short(p, 5))
    ax.set(xlabel="round", ylabel=f"{code} earned (cumulative)", title=f"{code} per pseudonym")
    round_axis(ax)
    if 0 < len(pseudonyms) <= 12:
        ax.legend(fontsize="small", ncol=2)
    return figs.html(fig, "coins", f"{code} per pseudonym over time, from the manifests")


def _verdicts_figure(figs: Figures, manifests: list[RoundManifest]) -> str:
    reasons = sorted({r.reason for m in manifests for r in m.rejections})
    rounds = [m.server_round for m in manifests]
    fig = figs.new()
    ax = fig.add_subplot()
    bottom = [len(m.contributions) for m in manifests]
    ax.bar(rounds, bottom, label="accepted", color="#4c9a2a")
    for reason in reasons:
        counts = [Counter(r.reason for r in m.rejections)[reason] for m in manifests]
        ax.bar(rounds, counts, bottom=bottom, label=f"rejected: {reason}")
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    ax.set(xlabel="round", ylabel="replies", title="accepted and rejected replies by reason")
    round_axis(ax)
    ax.legend(fontsize="small")
    return figs.html(fig, "verdicts", "Replies per round: accepted, and rejected by reason")


def _scores_figure(figs: Figures, manifests: list[RoundManifest]) -> str:
    data = [[c.score for c in m.contributions] or [0] for m in manifests]
    fig = figs.new()
    ax = fig.add_subplot()
    ax.boxplot(data, tick_labels=[str(m.server_round) for m in manifests])
    ax.set(xlabel="round", ylabel="score (scorer's weight)", title="score distribution")
    return figs.html(fig, "scores", "Contribution scores per round (the scorer's integer weights)")


def _audit_section(audit: list[AuditReport] | None, why_not: str) -> str:
    if audit is None:
        return f"<h2>Audit</h2><p class='note'>Not run: {esc(why_not)}</p>"
    parts = ["<h2>Audit</h2>"]
    for report in audit:
        verdict = (
            "<span class='pass'>PASS</span>" if report.passed else "<span class='fail'>FAIL</span>"
        )
        parts.append(f"<p>Run {esc(report.run_id)}: {verdict}</p>")
        rows = [
            (
                esc(f.server_round if f.server_round is not None else "all"),
                esc(f.check),
                "<span class='pass'>pass</span>" if f.ok else "<span class='fail'>FAIL</span>",
                esc(f.detail),
            )
            for f in report.findings
            if not f.ok or f.check in ("ledger-chain",)
        ]
        if rows:
            parts.append(table(("round", "check", "result", "detail"), rows, raw=True))
    return "".join(parts)


def write_run_report(
    run_dir: Path,
    output: Path | None = None,
    *,
    audit: list[AuditReport] | None = None,
    run_audit: bool = True,
) -> Path:
    """Write ``report.html`` (and its PNGs) for the run in ``run_dir``.

    Parameters
    ----------
    run_dir : Path
        The run's folder: ``manifests/`` and, for the reference app, ``metrics.json``.
    output : Path, optional
        The page to write (default ``run_dir/report.html``).
    audit : list[AuditReport], optional
        An audit already made; otherwise one is run when ``run_dir/ledger.db`` exists.
    run_audit : bool
        Set False to skip the audit.

    Returns
    -------
    Path
        The page written.
    """
    output = output or run_dir / "report.html"
    output.parent.mkdir(parents=True, exist_ok=True)
    metrics = _metrics(run_dir)
    run_id = metrics.get("run_id")
    # unreadable files are skipped: the audit reports them; the report shows what can be read
    manifests = read_run_manifests(run_dir, run_id if isinstance(run_id, int) else None)
    why_not = "no embedded ledger in the run folder (use `flwr-stellar audit --ledger URL`)"
    if audit is None and run_audit and (run_dir / "ledger.db").is_file() and manifests:
        from flwr_stellar.audit.cli import run_audit_for

        try:
            audit = run_audit_for(run_dir)
        except Exception as err:  # the page still shows what it can, and why there is no audit
            why_not = f"the audit could not run: {err}"
    figs = Figures(output.parent, output.stem + "-")
    asset = manifests[0].asset if manifests else str(metrics.get("asset", "DLC:?"))
    code = asset.split(":")[0]
    rounds = metrics.get("rounds", []) if isinstance(metrics.get("rounds"), list) else []
    final = next((r for r in reversed(rounds) if "central_accuracy" in r), None)
    verdict = "not run" if audit is None else "PASS" if all(r.passed for r in audit) else "FAIL"
    summary = table(
        (
            "run",
            "status",
            "rounds",
            "final accuracy",
            "backdoor success",
            "coin",
            "paid in all",
            "audit",
        ),
        [
            (
                manifests[0].run_id if manifests else run_id or "?",
                metrics.get("status", "?"),
                len(manifests),
                f"{final['central_accuracy']:.2%}" if final else "-",
                f"{final['attack_success_rate']:.1%}"
                if final and "attack_success_rate" in final
                else "-",
                f"{code} (issuer {short(asset.partition(':')[2], 6)})",
                format_amount(sum(m.total_paid for m in manifests)) + f" {code}",
                verdict,
            )
        ],
    )
    sections = [f"<p>Folder <code>{esc(run_dir)}</code></p>", summary]
    sections.append(_privacy_section(manifests))
    sections.append("<h2>Training</h2>" + _accuracy_figure(figs, rounds))
    if manifests:
        sections.append("<h2>Rewards and screening</h2>")
        sections.append(_coins_figure(figs, manifests, code))
        sections.append(_verdicts_figure(figs, manifests))
        sections.append(_scores_figure(figs, manifests))
    else:
        sections.append("<p class='note'>No manifests: this run used no ledger.</p>")
    sections.append(_audit_section(audit, why_not))
    sections.append(_rounds_section(manifests, metrics, audit, code))
    sections.append(_pseudonyms_section(manifests, metrics, code))
    config = metrics.get("config")
    if isinstance(config, dict):
        rows = [(k, json_scalar(v)) for k, v in sorted(config.items())]
        sections.append("<h2>Run config</h2>" + table(("key", "value"), rows))
    elif manifests:
        sections.append(
            f"<h2>Run config</h2><p>hash <code>{esc(manifests[0].config_hash)}</code></p>"
        )
    output.write_text(
        page(f"flwr-stellar run {manifests[0].run_id if manifests else run_id}", sections)
    )
    return output


def _privacy_section(manifests: list[RoundManifest]) -> str:
    """The (epsilon, delta) the run's manifests state, round by round ("" without DP)."""
    stated = [(m.server_round, m.privacy) for m in manifests if m.privacy is not None]
    if not stated:
        return ""
    _, last = stated[-1]
    assert last is not None
    calibrated = f", noise calibrated for {last.num_sampled} nodes" if last.num_sampled else ""
    lead = (
        f"<p>{esc(last.mechanism)}: noise multiplier {esc(last.noise_multiplier)}, clipping "
        f"norm {esc(last.clipping_norm)}{esc(calibrated)}, sampling {esc(last.sampling)}. "
        f"After round {esc(stated[-1][0])}: <b>epsilon {esc(last.epsilon)} at delta "
        f"{esc(last.delta)}</b> ({esc(last.releases)} release(s), {esc(last.accountant)}). "
        "The guarantee covers the released models; scores, payouts and rejections are "
        "computed from the updates as received (docs/privacy.md).</p>"
    )
    rows = [
        (
            r,
            f"{s.sampled} of {s.population}",
            s.effective_noise_multiplier or "no release",
            s.sample_rate or "-",
            s.epsilon,
        )
        for r, s in stated
        if s is not None
    ]
    headers = ("round", "sampled", "effective noise multiplier", "q", "epsilon so far")
    return "<h2>Differential privacy</h2>" + lead + table(headers, rows)


def _transactions(metrics: dict[str, Any], audit: list[AuditReport] | None) -> dict[str, list[str]]:
    """Round -> transaction hashes: from the audit (the ledger) when run, else metrics.json."""
    out: dict[str, list[str]] = {}
    for report in audit or []:
        for f in report.findings:
            if f.check == "anchor" and f.ok and f.server_round is not None:
                out[str(f.server_round)] = f.detail.split(", ")
    anchors = metrics.get("anchors")
    if not out and isinstance(anchors, dict):
        for r, a in anchors.items():
            out[str(r)] = list(a.get("transactions", []))
    return out


def _rounds_section(
    manifests: list[RoundManifest],
    metrics: dict[str, Any],
    audit: list[AuditReport] | None,
    code: str,
) -> str:
    if not manifests:
        return ""
    txs = _transactions(metrics, audit)
    rows = []
    for m in manifests:
        rejected = Counter(r.reason for r in m.rejections)
        digest = m.hash()
        rows.append(
            (
                esc(m.server_round),
                esc(len(m.contributions)),
                esc(", ".join(f"{n} {reason}" for reason, n in sorted(rejected.items())) or "-"),
                esc(f"{format_amount(m.total_paid)} {code}"),
                f"<a href='manifests/{esc(digest)}.json'><code>{esc(short(digest))}</code></a>",
                "<br>".join(f"<code>{esc(h)}</code>" for h in txs.get(str(m.server_round), []))
                or "-",
            )
        )
    headers = ("round", "accepted", "rejected", "paid", "manifest (MemoHash)", "transactions")
    return "<h2>Rounds on the ledger</h2>" + table(headers, rows, raw=True)


def _pseudonyms_section(manifests: list[RoundManifest], metrics: dict[str, Any], code: str) -> str:
    if not manifests:
        return ""
    owed: Counter[str] = Counter()
    rounds: Counter[str] = Counter()
    for m in manifests:
        for who, amount in m.payments():
            owed[who] += amount
        for c in m.contributions:
            rounds[c.pseudonym] += 1
    rewards = metrics.get("rewards", {}) if isinstance(metrics.get("rewards"), dict) else {}
    roles = metrics.get("roles", {}) if isinstance(metrics.get("roles"), dict) else {}
    rows = [
        (
            p,
            roles.get(p, "-"),
            rounds[p],
            f"{format_amount(owed[p])} {code}",
            format_amount(rewards[p]["balance_stroops"])
            if p in rewards and rewards[p]["balance_stroops"] is not None
            else "-",
        )
        for p in sorted(owed)
    ]
    for p, role in sorted(roles.items()):
        if p not in owed:
            rows.append((p, role, 0, f"0 {code}", "-"))
    headers = ("pseudonym", "role", "rounds accepted", "owed (manifests)", "balance (ledger)")
    return f"<h2>{esc(code)} per pseudonym</h2>" + table(headers, rows)
