"""What differential privacy costs and buys on the reference app with its two hostile nodes
(conf/attack/hostile: node 3 sends NaNs, node 7 its update reversed x10): no DP, central DP with
the nodes clipping (Flower's fixedclipping_mod inside the signing Mod,
DifferentialPrivacyClientSideFixedClipping inside the LedgerStrategy) at a few noise
multipliers, and one LocalDpMod setting. Per setting: final accuracy, the epsilon at delta 1e-5
the last manifest states (and that the end-of-run audit recomputed), DLC owed to honest nodes and
to the attackers, and how many of the attackers' updates screening rejected (and for what).
Writes benchmarks/results/privacy.json.

    python benchmarks/bench_privacy.py [--nodes 10] [--rounds 10] [--examples 1000]
        [--noise 0.01 0.1 1.0] [--clip 2.0] [--local-epsilon 1000] [--set KEY=VALUE ...]

Smaller than the demo (fewer rounds and examples a round) to fit ~12 minutes of two shared
cores; every run uses the same seed, so the rows differ only by their privacy settings.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from demo_runner import machine

from flwr_stellar.app.simulation import run_app_simulation
from flwr_stellar.payments.manifest import read_run_manifests

RESULTS = Path(__file__).resolve().parent / "results" / "privacy.json"
HOSTILE = {"attack.kind": "nan,signflip", "attack.nodes": "3,7"}  # conf/attack/hostile.yaml
DELTA = 1e-5
STROOPS = 10**7


def one(label: str, privacy: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix=f"bench-privacy-{label}-"))
    overrides = {
        "num_rounds": args.rounds,
        "dataset.max_train_examples": args.examples,
        "output_dir": str(out),
        "privacy.delta": DELTA,
        **HOSTILE,
        **privacy,
        **dict(args.set),
    }
    started = time.perf_counter()
    run_app_simulation(overrides, num_supernodes=args.nodes)
    wall = time.perf_counter() - started
    m = json.loads((out / "metrics.json").read_text())
    roles, rewards = m["roles"], m["rewards"]
    owed = {role: 0 for role in ("honest", "attacker")}
    for pseudonym, r in rewards.items():
        owed[roles.get(pseudonym, "honest")] += r["owed_stroops"]
    caught: dict[str, int] = {}
    attacker_accepted = honest_rejected = honest_accepted = 0
    for manifest in read_run_manifests(out):
        for rejection in manifest.rejections:
            if roles.get(rejection.pseudonym) == "attacker":
                caught[rejection.reason] = caught.get(rejection.reason, 0) + 1
            else:
                honest_rejected += 1
        for c in manifest.contributions:
            if roles.get(c.pseudonym) == "attacker":
                attacker_accepted += 1
            else:
                honest_accepted += 1
    rounds = [r for r in m["rounds"] if "central_accuracy" in r]
    statement = m.get("privacy")
    audit = m.get("audit") or [{}]
    return {
        "setting": label,
        "privacy": privacy,
        "final_accuracy": round(rounds[-1]["central_accuracy"], 4),
        "accuracy_by_round": {r["round"]: round(r["central_accuracy"], 4) for r in rounds},
        "epsilon": float(statement["epsilon"]) if statement else None,
        "delta": float(statement["delta"]) if statement else None,
        "epsilon_by_round": {
            r["round"]: r["privacy_epsilon"] for r in m["rounds"] if "privacy_epsilon" in r
        },
        "statement": statement,
        "dlc_honest": owed["honest"] / STROOPS,
        "dlc_attacker": owed["attacker"] / STROOPS,
        "attacker_updates": 2 * args.rounds,
        "attacker_updates_caught": sum(caught.values()),
        "attacker_caught_by_reason": caught,
        "attacker_updates_accepted": attacker_accepted,
        "honest_updates_accepted": honest_accepted,
        "honest_updates_rejected": honest_rejected,
        "audit_passed": bool(audit[0].get("passed")),
        "wall_s": round(wall, 1),
    }


def local_release(per_release_epsilon: float, clip: float, rounds: int) -> dict[str, Any]:
    """What LocalDpMod calibrates one release for, and the basic composition of that claim."""
    sigma = 2 * clip * math.sqrt(2 * math.log(1.25 / DELTA)) / per_release_epsilon
    return {
        "per_release_epsilon": per_release_epsilon,
        "per_release_delta": DELTA,
        "sensitivity": 2 * clip,
        "noise_std_per_parameter": sigma,
        "basic_composition_epsilon": rounds * per_release_epsilon,
        "basic_composition_delta": rounds * DELTA,
        "note": "the classic calibration sigma = sensitivity sqrt(2 ln(1.25/delta)) / epsilon is "
        "an (epsilon, delta) guarantee only for epsilon < 1; the 'epsilon' of the row is the RDP "
        "account of the noise actually added, composed over the rounds",
    }


def _setting(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not key or not sep:
        raise argparse.ArgumentTypeError(f"--set wants key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    parser.add_argument("--clip", type=float, default=2.0)
    parser.add_argument("--local-epsilon", type=float, default=1000.0)
    parser.add_argument("--set", type=_setting, action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    settings: list[tuple[str, dict[str, Any]]] = [("no-dp", {"privacy.mode": "none"})]
    for z in args.noise:
        settings.append(
            (
                f"central-client-clipping-z{z:g}",
                {
                    "privacy.mode": "client",
                    "privacy.noise_multiplier": z,
                    "privacy.clipping_norm": args.clip,
                },
            )
        )
    settings.append(
        (
            f"local-dp-eps{args.local_epsilon:g}",
            {
                "privacy.mode": "local",
                "privacy.clipping_norm": args.clip,
                "privacy.local_epsilon": args.local_epsilon,
                "privacy.local_delta": DELTA,
            },
        )
    )
    started = time.perf_counter()
    rows = []
    for label, privacy in settings:
        row = one(label, privacy, args)
        if privacy["privacy.mode"] == "local":
            row["local_release"] = local_release(args.local_epsilon, args.clip, args.rounds)
        rows.append(row)
        print(
            f"{label:>32}: accuracy {row['final_accuracy']:.2%}, epsilon {row['epsilon']}, "
            f"DLC honest {row['dlc_honest']:.2f} attacker {row['dlc_attacker']:.2f}, attacker "
            f"updates caught {row['attacker_updates_caught']}/{row['attacker_updates']} "
            f"{row['attacker_caught_by_reason']}, {row['wall_s']} s",
            flush=True,
        )
    payload = {
        "benchmark": "privacy",
        "what": "reference app, two hostile nodes, DP settings side by side (one run each)",
        "settings": {
            "nodes": args.nodes,
            "attackers": HOSTILE,
            "rounds": args.rounds,
            "examples_per_round": args.examples,
            "fraction_train": 1.0,
            "clipping_norm": args.clip,
            "delta": DELTA,
            "accountant": "opacus-rdp (Opacus 1.6 RDPAccountant, default orders)",
            "overrides": dict(args.set),
        },
        "rows": rows,
        "total_wall_s": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"-> {RESULTS} ({payload['total_wall_s']} s)")


if __name__ == "__main__":
    main()
