"""Overhead of signed replies on the demo: plain FedAvg vs the same run with the signing Mod
and VerifiedStrategy (identity.enabled), same seed, in one process, in ABBA order
(plain, signed, signed, plain) so warm-up and drift weigh on both sides alike.

Reports the median seconds per round of each side and their ratio, and the final accuracies.
Signing does not touch the training, but Flower aggregates replies in arrival order, so float
sums (and the last digits of accuracy) vary from run to run even between two plain runs: the
plain-vs-plain spread is printed beside the plain-vs-signed one. Writes
benchmarks/results/identity.json.

    python benchmarks/bench_identity.py [--nodes N] [--rounds N] [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import statistics

from demo_runner import parse_overrides, run_demo, write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    base = parse_overrides(args.overrides) | {"strategy.name": "fedavg", "num_rounds": args.rounds}
    runs: dict[bool, list[dict]] = {False: [], True: []}
    for signed in (False, True, True, False):
        runs[signed].append(run_demo(base | {"identity.enabled": signed}, args.nodes))

    def per_round(side: bool) -> float:
        return statistics.median(r["seconds_per_round_median"] for r in runs[side])

    acc = {side: [r["final_central_accuracy"] for r in runs[side]] for side in runs}
    ratio = per_round(True) / per_round(False)
    result = {
        "benchmark": "identity_overhead",
        "order": "plain, signed, signed, plain",
        "plain_seconds_per_round": round(per_round(False), 3),
        "signed_seconds_per_round": round(per_round(True), 3),
        "seconds_per_round_ratio": round(ratio, 4),
        "plain_final_accuracy": acc[False],
        "signed_final_accuracy": acc[True],
        "plain_vs_plain_accuracy_spread": round(abs(acc[False][0] - acc[False][1]), 4),
        "plain_vs_signed_accuracy_spread": round(
            max(abs(a - b) for a in acc[False] for b in acc[True]), 4
        ),
        "runs": {"plain": runs[False], "signed": runs[True]},
    }
    path = write("identity", result)
    print(
        f"plain : {result['plain_seconds_per_round']} s/round (median of 2 runs), "
        f"final accuracy {acc[False]}"
    )
    print(
        f"signed: {result['signed_seconds_per_round']} s/round (median of 2 runs), "
        f"final accuracy {acc[True]}"
    )
    print(
        f"signed/plain: {ratio:.3f}x per round; accuracy spread plain-plain "
        f"{result['plain_vs_plain_accuracy_spread']}, plain-signed "
        f"{result['plain_vs_signed_accuracy_spread']} -> {path}"
    )


if __name__ == "__main__":
    main()
