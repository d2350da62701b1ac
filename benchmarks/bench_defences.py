"""What issue 20's defences cost a round on the demo: the reference app with them switched off
(the defaults before that issue) against the defaults now, same seed, no attackers, in one
process, ABBA order. Target: <= 1.05x seconds per round. Writes
benchmarks/results/defences.json.

    python benchmarks/bench_defences.py [--nodes N] [--rounds N] [KEY=VALUE ...]
"""

from __future__ import annotations

from demo_runner import abba_on_the_demo

# issue 20's defences, off: no norm bound, no reputation or holdback, no copy, claim or lone
# step check, the norm-outlier factor it had (3)
BEFORE = {
    "screening.bound": "off",
    "screening.lone_step.enabled": False,
    "screening.norm_outlier.factor": 3.0,
    "reputation.enabled": False,
    "reputation.holdback": 0.0,
    "screening.copied_update.max_cosine": 1.0,
    "screening.claim_outlier.factor": 0.0,
    "screening.cluster_outlier.enabled": False,
}


def main() -> None:
    abba_on_the_demo(__doc__, "defences", (("before", BEFORE), ("after", {})))


if __name__ == "__main__":
    main()
