"""Cost of intake + screening of one demo round (10 updates of the 225k-parameter CNN), beside
what the round costs anyway: FedAvg's own aggregation of the same replies. Also the robust centre
alone: the sorting-network coordinate median vs ``np.median(axis=0)``. ABBA order, medians.
Writes benchmarks/results/screening.json.

    python benchmarks/bench_screening.py [--nodes N] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402
from helpers import instruction  # noqa: E402

from flwr_stellar.app.models import build_model  # noqa: E402
from strategies.intake import IntakeSettings  # noqa: E402
from strategies.screening import coordinate_median, screen_replies  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    global_arrays = ArrayRecord(build_model("cnn").state_dict())
    rng = np.random.default_rng(0)
    replies = []
    for _ in range(args.nodes):
        arrays = ArrayRecord(
            {
                k: Array((a.numpy() + 0.01 * rng.normal(size=a.shape)).astype(a.numpy().dtype))
                for k, a in global_arrays.items()
            }
        )
        metrics = MetricRecord({"num-examples": 2000, "train_loss": 0.5})
        replies.append(instruction(RecordDict({"arrays": arrays, "metrics": metrics})))
    intake = IntakeSettings(max_num_examples=2000)
    fedavg = FedAvg()

    def run_screen() -> None:
        result = screen_replies(replies, global_arrays, intake=intake)
        assert len(result.candidates) == args.nodes

    rows = np.stack([rng.normal(size=225_034).astype(np.float32) for _ in range(args.nodes)])
    cases = {
        "screen": run_screen,
        "fedavg_aggregate": lambda: fedavg.aggregate_train(1, replies),
        "median_network": lambda: coordinate_median(rows),
        "median_numpy": lambda: np.median(rows, axis=0),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.repeats):
        for name in [*cases, *reversed(cases)]:  # ABBA
            times[name].append(timed(cases[name]))
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "nodes": args.nodes,
        "parameters": int(sum(a.numpy().size for a in global_arrays.values())),
        "median_ms": {k: round(v * 1000, 2) for k, v in med.items()},
        "screen_vs_fedavg_aggregate": round(med["screen"] / med["fedavg_aggregate"], 3),
        "median_numpy_vs_network": round(med["median_numpy"] / med["median_network"], 2),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "screening.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
