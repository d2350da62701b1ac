"""Measured tables for the manual (docs/), generated from benchmarks/results/* (never by hand).

Each table sits between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->`` in a page named in
``PAGES``; ``TABLES`` says which generator makes each NAME and ``SOURCES`` which results files
it reads (tests/test_tables.py checks that every results file has a table). ``--write``
replaces what is between the markers with what the results say, ``--check`` exits 1 when a
page is out of date (tests/test_tables.py runs the same check).

    python benchmarks/tables.py --write
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"


def _rows(name: str) -> list[dict[str, Any]]:
    path = RESULTS / name
    rows: list[dict[str, Any]] = json.loads(path.read_text())["rows"] if path.exists() else []
    return rows


def _rejects(rejects: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(rejects.items(), key=lambda kv: -kv[1])) or "-"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def robust_rewards() -> str:
    """Issue 20's table: per attack kind, before and after its defences, side by side; then
    the variants measured with one more setting (tags ``after+...``) against the same clean
    run."""
    rows = _rows("robust_rewards.json")
    by = {(r["tag"], r["kind"]): r for r in rows}
    kinds = list(dict.fromkeys(r["kind"] for r in rows if r["tag"] == "after"))
    variants = [(r["tag"], r["kind"]) for r in rows if str(r["tag"]).startswith("after+")]
    base = by.get(("after", "none"))
    lines = [
        "| attack | attackers' DLC before → after | accuracy after (points vs clean) "
        "| backdoor success before → after | honest replies rejected after "
        "| rejections after (15 rounds) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for tag, kind in [("after", k) for k in kinds] + variants:
        after, before = by[(tag, kind)], by.get(("before", kind))
        gap = (
            f" ({100 * (after['final_accuracy'] - base['final_accuracy']):+.1f})"
            if base is not None and (tag, kind) != ("after", "none")
            else ""
        )
        honest = after.get("honest_replies", {})
        seen = honest.get("accepted", 0) + honest.get("rejected", 0)
        name = f"`{kind}`" + (f" ({tag})" if tag != "after" else "")
        lines.append(
            f"| {name} | {_pct(before['attacker_share']) if before else '-'} → "
            f"{_pct(after['attacker_share'])} | {after['final_accuracy']:.3f}{gap} | "
            f"{_pct(before['attack_success_rate']) if before else '-'} → "
            f"{_pct(after['attack_success_rate'])} | "
            f"{honest.get('rejected', 0)} of {seen} | {_rejects(after['rejects'])} |"
        )
    return "\n".join(lines)


def data_free() -> str:
    """The examples' data-free defaults, before and after."""
    rows = _rows("data_free.json")
    by = {(r["example"], r["defences"], r["kind"]): r for r in rows}
    lines = [
        "| example | attack | attackers' DLC before → after | accuracy before → after "
        "| rejections after |",
        "| --- | --- | --- | --- | --- |",
    ]
    for example, defences, kind in by:
        if defences != "after":
            continue
        after, before = by[(example, "after", kind)], by.get((example, "before", kind))
        lines.append(
            f"| {example} | `{kind}` | {_pct(before['attacker_share']) if before else '-'} → "
            f"{_pct(after['attacker_share'])} | "
            f"{before['final_accuracy']:.3f} → "
            * bool(before)
            + f"{after['final_accuracy']:.3f} | {_rejects(after['rejects'])} |"
        )
    return "\n".join(lines)


def sweep() -> str:
    """The robustness sweep's own summary.csv (copied to benchmarks/results/), as it wrote it."""
    path = RESULTS / "robustness_sweep.csv"
    if not path.exists():
        return "(no sweep summary in benchmarks/results/robustness_sweep.csv yet)"
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    lines = [
        "| strategy | attack | attackers | attackers' DLC | final accuracy | backdoor success "
        "| rejections |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        share = float(r["attacker_share"]) if r["attacker_share"] else 0.0
        asr = float(r["attack_success_rate"]) if r["attack_success_rate"] else 0.0
        rejects = r["rejects_by_reason"].replace("=", " ").replace(";", ", ") or "-"
        lines.append(
            f"| {r['strategy']} | `{r['attack']}` | {r['attackers']} | {_pct(share)} | "
            f"{float(r['final_accuracy']):.3f} | {_pct(asr)} | {rejects} |"
        )
    return "\n".join(lines)


def linkability() -> str:
    """Issue 22's table: what an observer of the ledger alone linked across two runs."""
    path = RESULTS / "linkability.json"
    if not path.exists():
        return "(no results yet: run python benchmarks/bench_linkability.py)"
    doc = json.loads(path.read_text())
    lines = [
        "| payouts | pseudonyms linked by their amounts (right / wrong) | nearest amounts right "
        "(chance) | pseudonyms with an account, and who created them |",
        "| --- | --- | --- | --- |",
    ]
    for name, r in doc["configs"].items():
        n = r["nodes_in_both"]
        lines.append(
            f"| {name} | {r['amounts_linked_right']} / {r['amounts_linked_wrong']} of {n} "
            f"| {r['nearest_right']} of {n} ({r['chance_nearest']:.2f}) "
            f"| {r['pseudonyms_with_an_account']} of {r['pseudonyms']}"
            + (
                f", all created by {r['creators_of_those_accounts']} sponsor"
                if r["pseudonyms_with_an_account"]
                else ""
            )
            + " |"
        )
    return "\n".join(lines)


def _doc(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    doc: dict[str, Any] | None = json.loads(path.read_text()) if path.exists() else None
    return doc


def _missing(name: str, bench: str) -> str:
    return f"(no results yet in benchmarks/results/{name}: run python benchmarks/{bench})"


def _last3(row: dict[str, Any]) -> float:
    accuracies = row["accuracy_per_round"][-3:]
    return float(sum(accuracies) / len(accuracies))


def _gap(value: float, clean: float | None) -> str:
    return "" if clean is None else f" ({100 * (value - clean):+.1f})"


def attacks() -> str:
    """The attack suite before the later defences: FedAvg, 15 rounds, against the clean run.
    Rows measured with earlier code (a ``note``) are marked † and get no difference."""
    rows = [
        r
        for r in _rows("attacks.json")
        if r.get("strategy", "fedavg") == "fedavg" and r["rounds"] == 15
    ]
    if not rows:
        return _missing("attacks.json", "bench_attacks.py")
    rows = [r for r in rows if "note" not in r] + [r for r in rows if "note" in r]
    clean = next((r for r in rows if r["kind"] == "none" and "note" not in r), None)
    lines = [
        "| attack | attackers' DLC | final accuracy (points vs clean) | last 3 rounds "
        "| rejections (15 rounds, 45 attacker replies) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        noted = "note" in r
        final, last3 = r["accuracy_per_round"][-1], _last3(r)
        base = None if noted or clean is None else clean
        lines.append(
            f"| `{r['kind']}`{' †' if noted else ''} | {_pct(r['attacker_share'])} | "
            f"{final:.3f}{_gap(final, None if base is None else base['accuracy_per_round'][-1])}"
            f" | {last3:.3f}{_gap(last3, None if base is None else _last3(base))} | "
            f"{_rejects(r['rejects'])} |"
        )
    return "\n".join(lines)


def robust_inner() -> str:
    """The same attacks under robust inner strategies (8 rounds), each against its own clean
    run."""
    rows = [r for r in _rows("attacks.json") if r.get("strategy", "fedavg") != "fedavg"]
    if not rows:
        return _missing("attacks.json", "bench_attacks.py")
    clean = {r["strategy"]: r for r in rows if r["kind"] == "none"}
    lines = [
        "| strategy / attack | attackers' DLC | final accuracy (vs its clean run) "
        "| last 3 rounds | rejections |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        base = clean.get(r["strategy"])
        final, last3 = r["accuracy_per_round"][-1], _last3(r)
        lines.append(
            f"| {r['strategy']} / `{r['kind']}` | {_pct(r['attacker_share'])} | "
            f"{final:.3f}{_gap(final, None if base is None else base['accuracy_per_round'][-1])}"
            f" | {last3:.3f}{_gap(last3, None if base is None else _last3(base))} | "
            f"{_rejects(r['rejects'])} |"
        )
    return "\n".join(lines)


def attacks_8_rounds() -> str:
    """The earlier 8-round FedAvg runs behind the choice of defaults (with and without the
    ``hurts_validation`` trust root)."""
    rows = [
        r
        for r in _rows("attacks.json")
        if r.get("strategy", "fedavg") == "fedavg" and r["rounds"] == 8
    ]
    if not rows:
        return _missing("attacks.json", "bench_attacks.py")
    lines = [
        "| attack | `hurts_validation` | attackers' DLC | final accuracy | rejections (8 rounds) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| `{r['kind']}` | {'on' if r['validation_check'] else 'off'} | "
            f"{_pct(r['attacker_share'])} | {r['accuracy_per_round'][-1]:.3f} | "
            f"{_rejects(r['rejects'])} |"
        )
    return "\n".join(lines)


def privacy() -> str:
    """Differential privacy on the reference app with its two hostile nodes, one run a setting:
    the epsilon the last manifest states, accuracy, DLC, and what screening still caught."""
    doc = _doc("privacy.json")
    if doc is None:
        return _missing("privacy.json", "bench_privacy.py")
    lines = [
        "| setting | ε (at δ) | final accuracy | DLC honest / attackers "
        "| attackers' updates caught | honest updates rejected | audit |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in doc["rows"]:
        eps = "-" if r.get("epsilon") is None else f"{r['epsilon']:.3g} (δ {r['delta']:g})"
        caught = f"{r['attacker_updates_caught']} of {r['attacker_updates']}"
        if r.get("attacker_caught_by_reason"):
            caught += f" ({_rejects(r['attacker_caught_by_reason'])})"
        lines.append(
            f"| `{r['setting']}` | {eps} | {r['final_accuracy']:.3f} | "
            f"{r['dlc_honest']:.2f} / {r['dlc_attacker']:.2f} | {caught} | "
            f"{r['honest_updates_rejected']} | {'pass' if r['audit_passed'] else 'FAIL'} |"
        )
    return "\n".join(lines)


COMPARISONS = (  # results file, what the two sides are
    ("ledger_strategy.json", "LedgerStrategy (`first-order`) vs plain FedAvg"),
    ("ledger_strategy_num-examples.json", "LedgerStrategy (`num-examples`) vs plain FedAvg"),
    ("identity.json", "signed replies vs unsigned"),
    ("accountability.json", "terms, receipts and journals vs none"),
    ("defences.json", "the robust-rewards defences vs off"),
    ("scoring_first-order.json", "`first-order` vs `num-examples` scorer"),
)


def overhead() -> str:
    """Side-by-side demo runs in ABBA order: seconds per round, wall time, final accuracy."""
    lines = [
        "| comparison (B vs A) | rounds | seconds per round A → B | ratio | wall ratio "
        "| final accuracy A → B | file |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, what in COMPARISONS:
        doc = _doc(name)
        if doc is None:
            continue
        a, b = (side.strip() for side in doc["order"].split(",")[:2])
        rounds = doc["runs"][a][0]["rounds"]
        wall = f"{doc['wall_ratio']:.3f}x" if "wall_ratio" in doc else "-"
        accs = "; ".join(
            "/".join(f"{x:.4f}" for x in doc[f"{side}_final_accuracy"]) for side in (a, b)
        )
        lines.append(
            f"| {what} | {rounds} | {doc[f'{a}_seconds_per_round']:.2f} → "
            f"{doc[f'{b}_seconds_per_round']:.2f} s | {doc['seconds_per_round_ratio']:.3f}x | "
            f"{wall} | {accs.replace('; ', ' → ')} | `{name}` |"
        )
    return "\n".join(lines)


def baseline() -> str:
    """The demo with plain Flower FedAvg, no ledger layer."""
    doc = _doc("baseline_fedavg.json")
    if doc is None:
        return _missing("baseline_fedavg.json", "bench_baseline.py")
    reached = doc["first_round_at_85pct"]
    return "\n".join(
        [
            "| strategy | nodes | rounds | wall | seconds per round (median) | round 1 "
            "| final accuracy | first round at 85 % |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            f"| {doc['strategy']} | {doc['nodes']} | {doc['rounds']} | {doc['wall_s']:.1f} s | "
            f"{doc['seconds_per_round_median']:.2f} s | {doc['round_1_s']:.1f} s | "
            f"{doc['final_central_accuracy']:.4f} | {reached if reached else '-'} |",
        ]
    )


def ledger() -> str:
    """The embedded ledger's throughput and memory."""
    doc = _doc("ledger.json")
    if doc is None:
        return _missing("ledger.json", "bench_ledger.py")
    modes = (
        ("direct_one_tx_per_ledger", "direct, one transaction a ledger"),
        ("direct_ten_tx_per_ledger", "direct, ten transactions a ledger"),
        ("http", "through `ledger serve` + stellar_sdk"),
    )
    lines = [
        "| submitted | operations | seconds | operations/s | × pubnet's 200/s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, what in modes:
        m = doc.get(key)
        if m:
            lines.append(
                f"| {what} | {m['operations']:,} | {m['seconds']:.1f} | {m['ops_per_s']:,} | "
                f"{m['ratio_to_pubnet']:.1f} |"
            )
    mem = doc.get("memory")
    if mem:
        rss = max(s["rss_mb"] for s in mem["samples"])
        lines += [
            "",
            f"Memory: {mem['operations']:,} operations in "
            f"{mem['samples'][-1]['elapsed_s']:.0f} s, peak RSS {rss:.0f} MB "
            f"(+{mem['rss_growth_mb_after_first_100k']:.1f} MB after the first 100,000), "
            f"a {mem['db_file_mb']:,.0f} MB database.",
        ]
    return "\n".join(lines)


def server_scale() -> str:
    """The server's cost of one round at scale, stage by stage, against FedAvg's aggregate."""
    rows = _rows("server_scale.json")
    if not rows:
        return _missing("server_scale.json", "bench_server_scale.py")
    lines = [
        "| nodes | model (parameters) | verify | intake | screen | score | manifest | total "
        "| FedAvg aggregate | ratio | replies (float32) | extra peak memory |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['nodes']:,} | {r['model']} ({r['parameters']:,}) | {r['verify_s']:.3f} s | "
            f"{r['intake_s']:.3f} s | {r['screen_s']:.3f} s | {r['score_s']:.3f} s | "
            f"{r['manifest_s']:.3f} s | {r['total_s']:.2f} s | {r['fedavg_aggregate_s']:.3f} s | "
            f"{r['layer_vs_fedavg']:.1f}x | {r['replies_float32_mb']:,.1f} MB | "
            f"{r['extra_peak_mb']:,.1f} MB ({r['extra_vs_replies']:.2f}x) |"
        )
    return "\n".join(lines)


def signing() -> str:
    """Digest + ed25519 of an update against one SHA-256 pass and Flower's object id."""
    doc = _doc("signing.json")
    if doc is None:
        return _missing("signing.json", "bench_signing.py")
    lines = [
        "| update | SHA-256 | digest + sign | digest + verify | Flower's object id "
        "| sign / SHA-256 | verify / SHA-256 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in doc["results"]:
        lines.append(
            f"| {r['megabytes']} MB | {r['sha256_ms']:.1f} ms | {r['digest_sign_ms']:.1f} ms | "
            f"{r['digest_verify_ms']:.1f} ms | {r['flower_object_id_ms']:.1f} ms | "
            f"{r['sign_vs_sha256']:.3f}x | {r['verify_vs_sha256']:.3f}x |"
        )
    return "\n".join(lines)


def screening() -> str:
    """Screening one demo round against FedAvg's own aggregation."""
    doc = _doc("screening.json")
    if doc is None:
        return _missing("screening.json", "bench_screening.py")
    ms = doc["median_ms"]
    return "\n".join(
        [
            "| nodes | parameters | screen | FedAvg aggregate | ratio "
            "| coordinate median: sorting network | `np.median` |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            f"| {doc['nodes']} | {doc['parameters']:,} | {ms['screen']:.1f} ms | "
            f"{ms['fedavg_aggregate']:.1f} ms | {doc['screen_vs_fedavg_aggregate']:.2f}x | "
            f"{ms['median_network']:.1f} ms | {ms['median_numpy']:.1f} ms |",
        ]
    )


def deployment() -> str:
    """The same short run as a TLS + node-auth deployment on loopback and as a simulation."""
    doc = _doc("deployment.json")
    if doc is None:
        return _missing("deployment.json", "bench_deployment.py")
    return "\n".join(
        [
            "| nodes | rounds | `deploy up` | deployment run (median) | simulation run (median) "
            "| ratio |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| {doc['nodes']} | {doc['rounds']} | {doc['deploy_up_s']:.1f} s | "
            f"{doc['median_deployment_s']:.1f} s | {doc['median_simulation_s']:.1f} s | "
            f"{doc['ratio_deployment_vs_simulation']:.2f}x |",
        ]
    )


TABLES: dict[str, Callable[[], str]] = {
    "robust_rewards": robust_rewards,
    "data_free": data_free,
    "sweep": sweep,
    "linkability": linkability,
    "attacks": attacks,
    "robust_inner": robust_inner,
    "attacks_8_rounds": attacks_8_rounds,
    "overhead": overhead,
    "baseline": baseline,
    "ledger": ledger,
    "server_scale": server_scale,
    "signing": signing,
    "screening": screening,
    "deployment": deployment,
    "privacy": privacy,
}
# The results files each table reads: every file under benchmarks/results/ has a table (a
# table whose file is not there yet says so and names the benchmark that writes it).
SOURCES: dict[str, tuple[str, ...]] = {
    "robust_rewards": ("robust_rewards.json",),
    "data_free": ("data_free.json",),
    "sweep": ("robustness_sweep.csv",),
    "linkability": ("linkability.json",),
    "attacks": ("attacks.json",),
    "robust_inner": ("attacks.json",),
    "attacks_8_rounds": ("attacks.json",),
    "overhead": tuple(name for name, _ in COMPARISONS),
    "baseline": ("baseline_fedavg.json",),
    "ledger": ("ledger.json",),
    "server_scale": ("server_scale.json",),
    "signing": ("signing.json",),
    "screening": ("screening.json",),
    "deployment": ("deployment.json",),
    "privacy": ("privacy.json",),
}
# Which tables each page holds (a table may appear on more than one page: each copy is
# generated). docs/results.md holds every one.
PAGES: dict[Path, tuple[str, ...]] = {
    DOCS / "results.md": tuple(TABLES),
    DOCS / "rewards.md": ("attacks", "robust_inner", "robust_rewards", "data_free", "sweep"),
    DOCS / "wallet.md": ("linkability",),
    DOCS / "privacy.md": ("privacy",),
    DOCS / "ledger.md": ("ledger",),
    DOCS / "deployment.md": ("deployment",),
}


def render(text: str, names: tuple[str, ...] | None = None) -> str:
    """``text`` with every marked table of ``names`` (default: all) regenerated."""
    for name in TABLES if names is None else names:
        make = TABLES[name]
        pattern = re.compile(
            rf"(<!-- table:{name} -->\n)(?:.*?\n)?(<!-- /table:{name} -->)", flags=re.DOTALL
        )
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update the pages in place")
    parser.add_argument("--check", action="store_true", help="exit 1 if a page is stale")
    args = parser.parse_args()
    stale = 0
    for page, names in PAGES.items():
        text = page.read_text()
        fresh = render(text, names)
        if args.write:
            page.write_text(fresh)
        elif args.check and fresh != text:
            print(f"{page.name} tables are out of date: run python benchmarks/tables.py --write")
            stale += 1
        elif not args.check:
            sys.stdout.write(fresh)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
