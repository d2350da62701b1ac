"""Who gets the coins under attack: short simulations of the reference app where some nodes
attack (each signing what it sends), per attack kind and scorer; reports the attackers' share
of all DLC paid, the honest nodes' DLC, final accuracy and rejections by reason. Writes
benchmarks/results/attacks.json (one row per run; rows of earlier calls are kept unless the
same kind/scorer/settings is measured again).

    python benchmarks/bench_attacks.py --scorers first-order num-examples \\
        --kinds none labelflip noise lazy signflip1 [--nodes 6] [--attackers 1,4] [--rounds 3]

Issue 20's table (10 nodes, 3 attackers, 15 rounds, the demo's 2,000 examples a round), with
the defences of that issue switched off (``--tag before --set defences=off``) or on::

    python benchmarks/bench_attacks.py --nodes 10 --attackers 2,5,8 --rounds 15 \\
        --examples 2000 --tag after --kinds none boost lazyscaled copier ...

``--set key=value`` passes any run-config override (repeatable); ``--tag`` names the
configuration in the results, so rows of two configurations sit side by side.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from flwr_stellar.app.simulation import run_app_simulation

RESULTS = Path(__file__).resolve().parent / "results" / "attacks.json"
MIX = "labelflip,noise,deltafree"  # conf/attack/mix.yaml: one kind per attacker, in turn


def mix_of(kind: str, attackers: str) -> str:
    """``mix``: the attackers take the kinds of MIX in turn (one kind per listed node)."""
    if kind != "mix":
        return kind
    kinds = MIX.split(",")
    count = len([a for a in attackers.split(",") if a])
    return ",".join(kinds[i % len(kinds)] for i in range(count))


def one(kind: str, scorer: str, strategy: str, args: argparse.Namespace) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix=f"bench-attack-{kind}-"))
    started = time.perf_counter()
    run_app_simulation(
        {
            "num_rounds": args.rounds,
            "dataset.max_train_examples": args.examples,
            "output_dir": str(out),
            "attack.kind": mix_of(kind, args.attackers),
            "attack.nodes": args.attackers if kind != "none" else "",
            "reward.scorer": scorer,
            "strategy.name": strategy,
            "strategy.num_malicious": len([a for a in args.attackers.split(",") if a]),
            "reward.validation_examples": args.validation_examples,
            "screening.hurts_validation.enabled": args.validation_check,
            **dict(args.set),
        },
        num_supernodes=args.nodes,
    )
    m = json.loads((out / "metrics.json").read_text())
    roles, rewards = m["roles"], m["rewards"]
    attackers = sum(r["owed_stroops"] for p, r in rewards.items() if roles.get(p) == "attacker")
    honest = sorted(r["owed_stroops"] for p, r in rewards.items() if roles.get(p) != "attacker")
    total = attackers + sum(honest)
    rejects: dict[str, int] = {}
    for r in m["rounds"]:
        for key, value in r.items():
            if key.startswith("rejected_"):
                rejects[key[9:]] = rejects.get(key[9:], 0) + int(value)
    return {
        "kind": kind,
        "scorer": scorer,
        "strategy": strategy,
        "nodes": args.nodes,
        "attackers": args.attackers if kind != "none" else "",
        "rounds": args.rounds,
        "validation_check": args.validation_check,
        "tag": args.tag,
        "settings": dict(args.set),
        "attacker_share": round(attackers / total, 4) if total else 0.0,
        "honest_dlc": [h / 10**7 for h in honest],
        "accuracy_per_round": [round(r.get("central_accuracy", 0.0), 4) for r in m["rounds"]],
        "final_accuracy": round(m["rounds"][-1].get("central_accuracy", 0.0), 4),
        "attack_success_rate": round(m["rounds"][-1].get("attack_success_rate", 0.0), 4),
        "honest_replies": honest_replies(m, roles),
        "rejects": rejects,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def honest_replies(m: dict[str, Any], roles: dict[str, str]) -> dict[str, int]:
    """Honest train replies over the run: how many were accepted and how many rejected."""
    honest_nodes: set[str] = set()
    accepted = rejected = 0
    verification = m.get("verification", {})
    for by_kind in verification.values():
        train = by_kind.get("train", {})
        for node, pseudonym in train.get("accepted", {}).items():
            if roles.get(pseudonym) == "honest":
                honest_nodes.add(node)
                accepted += 1
    for by_kind in verification.values():
        for r in by_kind.get("train", {}).get("rejected", []):
            if str(r["node"]) in honest_nodes:
                rejected += 1
    return {"accepted": accepted, "rejected": rejected}


def _setting(text: str) -> tuple[str, Any]:
    key, _, value = text.partition("=")
    if not key or not _:
        raise argparse.ArgumentTypeError(f"--set wants key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _key(row: dict[str, Any], key: str) -> Any:
    """A row's value for ``key``; rows measured before ``--strategies`` existed are FedAvg."""
    return row.get(key, "fedavg" if key == "strategy" else "" if key == "tag" else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorers", nargs="+", default=["first-order"])
    parser.add_argument("--strategies", nargs="+", default=["fedavg"])
    parser.add_argument("--kinds", nargs="+", default=["none", "labelflip", "noise", "lazy"])
    parser.add_argument("--nodes", type=int, default=6)
    parser.add_argument("--attackers", default="1,4")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--validation-check", action="store_true")
    parser.add_argument("--validation-examples", type=int, default=500)
    parser.add_argument("--tag", default="", help="names the configuration in the results")
    parser.add_argument("--set", type=_setting, action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON file to update")
    args = parser.parse_args()
    results: Path = args.results
    rows = json.loads(results.read_text())["rows"] if results.exists() else []
    for strategy, scorer, kind in itertools.product(args.strategies, args.scorers, args.kinds):
        row = one(kind, scorer, strategy, args)
        same = (
            "kind",
            "scorer",
            "strategy",
            "nodes",
            "attackers",
            "rounds",
            "validation_check",
            "tag",
        )
        rows = [r for r in rows if any(_key(r, k) != row[k] for k in same)] + [row]
        print(
            f"{kind:>10} {strategy:>13} {scorer:>14}: attackers {row['attacker_share']:.1%} "
            f"of the DLC, accuracy {row['final_accuracy']:.3f}, ASR "
            f"{row['attack_success_rate']:.3f}, honest {row['honest_replies']}, "
            f"rejects {row['rejects']}",
            flush=True,
        )
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
