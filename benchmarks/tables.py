"""Measured tables for the README and docs/, generated from benchmarks/results/*.json (never
by hand).

Each table sits between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->`` in README.md or a
page of docs/ (``PAGES``); ``--write`` replaces what is there with what the results say,
``--check`` exits 1 when a file is out of date (tests/test_tables.py runs it).

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
README = ROOT / "README.md"


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


TABLES: dict[str, Callable[[], str]] = {
    "robust_rewards": robust_rewards,
    "data_free": data_free,
    "sweep": sweep,
}
PAGES: dict[Path, dict[str, Callable[[], str]]] = {
    README: TABLES,
    ROOT / "docs" / "wallet.md": {"linkability": linkability},
}


def render(text: str, tables: dict[str, Callable[[], str]] | None = None) -> str:
    """``text`` with every marked table regenerated."""
    for name, make in (TABLES if tables is None else tables).items():
        pattern = re.compile(
            rf"(<!-- table:{name} -->\n)(?:.*?\n)?(<!-- /table:{name} -->)", flags=re.DOTALL
        )
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update README.md in place")
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    args = parser.parse_args()
    stale = 0
    for page, tables in PAGES.items():
        text = page.read_text()
        fresh = render(text, tables)
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
