"""Shared by the demo benchmarks: run the demo federation once and summarise what happened."""

from __future__ import annotations

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
    from flwr_stellar.simulation import run_app_simulation

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
