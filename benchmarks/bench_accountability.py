"""What signed terms, receipts and the nodes' journals cost a round on the demo: the reference
app with receipts and journals off (``identity.receipts=false``; the terms are still signed,
once per run) against the defaults, same seed, no attackers, in one process, ABBA order.
Target: <= 1.01x seconds per round. Writes benchmarks/results/accountability.json.

    python benchmarks/bench_accountability.py [--nodes N] [--rounds N] [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse

from demo_runner import compare_abba, parse_overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    base = parse_overrides(args.overrides) | {"num_rounds": args.rounds, "attack.kind": "none"}
    sides = (("without", {"identity.receipts": False}), ("with", {}))
    compare_abba("accountability", base, sides, args.nodes)


if __name__ == "__main__":
    main()
