"""Shared by the demo benchmarks: run the demo federation once and summarise what happened."""

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
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

RESULTS = Path(__file__).resolve().parent / "results"


def parse_value(text: str) -> bool | int | float | str:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    return {k: parse_value(v) for k, v in (p.split("=", 1) for p in pairs)}


def run_demo(overrides: dict[str, Any], nodes: int) -> dict[str, Any]:
    """One in-process simulation of the App (as `make demo`); timings and accuracy."""
    from flwr_stellar.app.simulation import run_app_simulation

    out = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    started = time.perf_counter()
    run_app_simulation(overrides | {"output_dir": str(out)}, num_supernodes=nodes)
    wall = time.perf_counter() - started
    rounds = json.loads((out / "metrics.json").read_text())["rounds"]
    elapsed = [r["elapsed_s"] for r in rounds]
    per_round = [b - a for a, b in itertools.pairwise(elapsed[1:])]
    reached = [r["round"] for r in rounds if r.get("central_accuracy", 0) >= 0.85]
    return {
        "overrides": overrides,
        "nodes": nodes,
        "rounds": rounds[-1]["round"],
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
    }


def machine() -> dict[str, Any]:
    import flwr
    import torch

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "flwr": flwr.__version__,
    }


def write(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload | {"machine": machine()}, indent=2) + "\n")
    return path


def compare_abba(
    name: str,
    base: dict[str, Any],
    sides: tuple[tuple[str, dict[str, Any]], tuple[str, dict[str, Any]]],
    nodes: int,
) -> dict[str, Any]:
    """Run side A and side B in ABBA order (A, B, B, A) so warm-up and drift weigh on both
    alike; report medians of seconds per round and wall time, their B/A ratios, and final
    accuracies with the A-vs-A spread as the yardstick for run-to-run float noise."""
    (a_label, a_over), (b_label, b_over) = sides
    runs: dict[str, list[dict[str, Any]]] = {a_label: [], b_label: []}
    for label, over in (sides[0], sides[1], sides[1], sides[0]):
        runs[label].append(run_demo(base | over, nodes))

    def med(label: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[label])

    acc = {label: [r["final_central_accuracy"] for r in rs] for label, rs in runs.items()}
    result = {
        "benchmark": name,
        "order": f"{a_label}, {b_label}, {b_label}, {a_label}",
        "base_overrides": base,
        "sides": {a_label: a_over, b_label: b_over},
        f"{a_label}_seconds_per_round": med(a_label, "seconds_per_round_median"),
        f"{b_label}_seconds_per_round": med(b_label, "seconds_per_round_median"),
        "seconds_per_round_ratio": round(
            med(b_label, "seconds_per_round_median") / med(a_label, "seconds_per_round_median"), 4
        ),
        f"{a_label}_wall_s": med(a_label, "wall_s"),
        f"{b_label}_wall_s": med(b_label, "wall_s"),
        "wall_ratio": round(med(b_label, "wall_s") / med(a_label, "wall_s"), 4),
        f"{a_label}_final_accuracy": acc[a_label],
        f"{b_label}_final_accuracy": acc[b_label],
        f"{a_label}_vs_{a_label}_accuracy_spread": round(abs(acc[a_label][0] - acc[a_label][1]), 4),
        f"{a_label}_vs_{b_label}_accuracy_spread": round(
            max(abs(x - y) for x in acc[a_label] for y in acc[b_label]), 4
        ),
        "runs": runs,
    }
    path = write(name, result)
    for label in (a_label, b_label):
        print(
            f"{label:>8}: {med(label, 'seconds_per_round_median')} s/round, "
            f"{med(label, 'wall_s')} s wall (medians of 2), final accuracy {acc[label]}"
        )
    print(
        f"{b_label}/{a_label}: {result['seconds_per_round_ratio']:.3f}x per round, "
        f"{result['wall_ratio']:.3f}x wall; accuracy spread {a_label}-{a_label} "
        f"{result[f'{a_label}_vs_{a_label}_accuracy_spread']}, {a_label}-{b_label} "
        f"{result[f'{a_label}_vs_{b_label}_accuracy_spread']} -> {path}"
    )
    return result


Sides = tuple[tuple[str, dict[str, Any]], tuple[str, dict[str, Any]]]


def abba_on_the_demo(doc: str, name: str, sides: Sides, rounds: int = 15) -> dict[str, Any]:
    """The command line of a benchmark that compares two settings of the demo, no attackers:
    ``[--nodes N] [--rounds N] [KEY=VALUE ...]``, then :func:`compare_abba`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    base = parse_overrides(args.overrides) | {"num_rounds": args.rounds, "attack.kind": "none"}
    return compare_abba(name, base, sides, args.nodes)
