"""What value scoring costs the demo: the same federation scored by ``num-examples`` (counting,
no model evaluation) and by a value scorer (default ``first-order``: one validation gradient a
round), same seed, no attackers, ABBA order in one process. Target: <= 10% more seconds per
round at 10 nodes. Writes benchmarks/results/scoring_<scorer>.json.

    python benchmarks/bench_scoring.py [--scorer first-order] [--nodes 10] [--rounds 5]
"""

from __future__ import annotations

import argparse

from demo_runner import compare_abba, parse_overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorer", default="first-order")
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    base = parse_overrides(args.overrides) | {"num_rounds": args.rounds, "attack.kind": "none"}
    compare_abba(
        f"scoring_{args.scorer}",
        base,
        (
            ("counting", {"reward.scorer": "num-examples"}),
            ("value", {"reward.scorer": args.scorer}),
        ),
        args.nodes,
    )


if __name__ == "__main__":
    main()
