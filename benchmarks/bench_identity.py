"""Overhead of signed replies on the demo: plain FedAvg vs the same run with the signing Mod
and VerifiedStrategy (identity.enabled, no ledger), same seed, in one process, ABBA order.

Signing does not touch the training, but Flower aggregates replies in arrival order, so float
sums (and the last digits of accuracy) vary from run to run even between two plain runs: the
plain-vs-plain spread is printed beside the plain-vs-signed one. Writes
benchmarks/results/identity.json.

    python benchmarks/bench_identity.py [--nodes N] [--rounds N] [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse

from demo_runner import compare_abba, parse_overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    base = parse_overrides(args.overrides) | {
        "strategy.name": "fedavg",
        "num_rounds": args.rounds,
        "ledger.enabled": False,
    }
    compare_abba(
        "identity",
        base,
        (("plain", {"identity.enabled": False}), ("signed", {"identity.enabled": True})),
        args.nodes,
    )


if __name__ == "__main__":
    main()
