"""What signed terms, receipts and the nodes' journals cost a round on the demo: the reference
app with receipts and journals off (``identity.receipts=false``; the terms are still signed,
once per run) against the defaults, same seed, no attackers, in one process, ABBA order.
Target: <= 1.01x seconds per round. Writes benchmarks/results/accountability.json.

    python benchmarks/bench_accountability.py [--nodes N] [--rounds N] [KEY=VALUE ...]
"""

from __future__ import annotations

from demo_runner import abba_on_the_demo


def main() -> None:
    sides = (("without", {"identity.receipts": False}), ("with", {}))
    abba_on_the_demo(__doc__, "accountability", sides)


if __name__ == "__main__":
    main()
