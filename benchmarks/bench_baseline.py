"""Baseline: plain Flower FedAvg on the demo federation; every ledger feature is compared to it.

Runs the App as `make demo` does (10 simulated nodes, pyproject defaults) with every
flwr-stellar layer off (no signing Mod work, no verification), and reports wall time,
start-up, seconds per round, final central accuracy on the 10k test set and the first round
reaching 85%. Writes benchmarks/results/baseline_fedavg.json.

    python benchmarks/bench_baseline.py [--nodes N] [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json

from demo_runner import parse_overrides, run_demo, write

PLAIN = {
    "strategy.name": "fedavg",
    "identity.enabled": False,
    "ledger.enabled": False,
    "screening.enabled": False,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    result = run_demo(parse_overrides(args.overrides) | PLAIN, args.nodes)
    path = write(
        "baseline_fedavg",
        {"benchmark": "baseline_fedavg", "strategy": "plain Flower FedAvg", **result},
    )
    print(json.dumps({k: v for k, v in result.items() if k != "accuracy_by_round"}, indent=2))
    print(
        f"\nplain FedAvg: {result['seconds_per_round_median']} s per round (median, rounds 2+), "
        f"final accuracy {result['final_central_accuracy']:.2%}, wall {result['wall_s']} s "
        f"-> {path}"
    )


if __name__ == "__main__":
    main()
