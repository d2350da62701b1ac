"""Overhead of the whole ledger layer on the demo: plain Flower FedAvg vs LedgerStrategy over
FedAvg (pseudonyms, signing, verification, screening, sponsored onboarding, manifests,
anchoring and DLC payments on the embedded ledger), same seed, no attackers, in one process,
ABBA order. Target: <= 3% wall-time overhead, final accuracy identical up to the run-to-run
float noise that the plain-vs-plain spread shows. Writes benchmarks/results/ledger_strategy.json.

    python benchmarks/bench_ledger_strategy.py [--nodes N] [--rounds N] [--tag T] [KEY=VALUE ...]

``--tag`` names the results file ``ledger_strategy_<tag>.json`` (e.g. a run with
``reward.scorer=num-examples`` beside the default first-order one).
"""

from __future__ import annotations

import argparse

from demo_runner import compare_abba, parse_overrides

PLAIN = {"identity.enabled": False, "ledger.enabled": False, "screening.enabled": False}
LEDGER = {"identity.enabled": True, "ledger.enabled": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--tag", default="", help="suffix of the results file")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    base = parse_overrides(args.overrides) | {
        "strategy.name": "fedavg",
        "num_rounds": args.rounds,
        "attack.kind": "none",
    }
    name = f"ledger_strategy_{args.tag}" if args.tag else "ledger_strategy"
    compare_abba(name, base, (("plain", PLAIN), ("ledger", LEDGER)), args.nodes)


if __name__ == "__main__":
    main()
