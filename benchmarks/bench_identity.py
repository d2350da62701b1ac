"""Overhead of signed replies on the demo: plain FedAvg vs the same run with the signing Mod
and VerifiedStrategy (identity.enabled), same seed, back to back in one process.

Reports seconds per round for both, their ratio, and whether the final accuracy is identical
(it must be: signing does not touch the training). Writes benchmarks/results/identity.json.

    python benchmarks/bench_identity.py [--nodes N] [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse

from demo_runner import parse_overrides, run_demo, write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    base = parse_overrides(args.overrides) | {"strategy.name": "fedavg"}
    plain = run_demo(base | {"identity.enabled": False}, args.nodes)
    signed = run_demo(base | {"identity.enabled": True}, args.nodes)
    ratio = signed["seconds_per_round_median"] / plain["seconds_per_round_median"]
    wall_ratio = signed["wall_s"] / plain["wall_s"]
    same = plain["accuracy_by_round"] == signed["accuracy_by_round"]
    path = write(
        "identity",
        {
            "benchmark": "identity_overhead",
            "plain": plain,
            "signed": signed,
            "seconds_per_round_ratio": round(ratio, 4),
            "wall_ratio": round(wall_ratio, 4),
            "identical_accuracy": same,
        },
    )
    print(
        f"plain : {plain['seconds_per_round_median']} s/round, wall {plain['wall_s']} s, "
        f"final accuracy {plain['final_central_accuracy']:.4f}"
    )
    print(
        f"signed: {signed['seconds_per_round_median']} s/round, wall {signed['wall_s']} s, "
        f"final accuracy {signed['final_central_accuracy']:.4f}"
    )
    print(
        f"signed/plain: {ratio:.3f}x per round, {wall_ratio:.3f}x wall; identical accuracy "
        f"per round: {same} -> {path}"
    )


if __name__ == "__main__":
    main()
