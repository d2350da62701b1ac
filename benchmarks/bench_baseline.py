"""Baseline: plain Flower FedAvg on the demo federation; every ledger feature is compared to it.

Runs the App as `make demo` does (10 simulated nodes, pyproject defaults) in-process and
reports what it measured: wall time, start-up before round 1, seconds per round, final
central accuracy on the 10k test set, and the first round reaching 85%. Results go to
benchmarks/results/baseline_fedavg.json.

    python benchmarks/bench_baseline.py [--rounds N] [--nodes N] [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

RESULTS = Path(__file__).resolve().parent / "results"


def parse_value(text: str) -> bool | int | float | str:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=None, help="default: pyproject num_rounds")
    parser.add_argument("--name", default="baseline_fedavg")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()

    import flwr
    import torch

    from flwr_stellar.simulation import run_app_simulation

    out = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    overrides = {k: parse_value(v) for k, v in (o.split("=", 1) for o in args.overrides)}
    overrides |= {"output_dir": str(out), "strategy.name": "fedavg"}
    if args.rounds is not None:
        overrides["num_rounds"] = args.rounds
    started = time.perf_counter()
    run_app_simulation(overrides, num_supernodes=args.nodes)
    wall = time.perf_counter() - started

    metrics = json.loads((out / "metrics.json").read_text())
    rounds = metrics["rounds"]
    elapsed = [r["elapsed_s"] for r in rounds]
    per_round = [b - a for a, b in itertools.pairwise(elapsed[1:])]
    reached = [r["round"] for r in rounds if r.get("central_accuracy", 0) >= 0.85]
    result = {
        "benchmark": args.name,
        "strategy": "fedavg (plain Flower, no ledger layer)",
        "nodes": args.nodes,
        "rounds": rounds[-1]["round"],
        "overrides": {k: v for k, v in overrides.items() if k != "output_dir"},
        "wall_s": round(wall, 2),
        # ServerApp start -> initial central evaluation done (data load, model init)
        "server_setup_s": round(elapsed[0], 2),
        # round 1 includes starting the node workers and their first data load
        "round_1_s": round(elapsed[1] - elapsed[0], 2),
        "seconds_per_round_median": round(statistics.median(per_round), 3) if per_round else None,
        "seconds_per_round_max": round(max(per_round), 3) if per_round else None,
        "final_central_accuracy": rounds[-1]["central_accuracy"],
        "first_round_at_85pct": reached[0] if reached else None,
        "accuracy_by_round": {r["round"]: round(r["central_accuracy"], 4) for r in rounds},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "flwr": flwr.__version__,
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{args.name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "accuracy_by_round"}, indent=2))
    print(
        f"\nplain FedAvg: {result['seconds_per_round_median']} s per round (median, rounds 2+), "
        f"final accuracy {result['final_central_accuracy']:.2%}, wall {wall:.1f} s -> {path}"
    )


if __name__ == "__main__":
    main()
