"""Server-side cost of one round at scale, the layer beside FedAvg's own aggregate_train.

The layer: verify (signatures over each reply's canonical digest), intake (every reply decoded
once, strictly, into the delta matrix), screen (the default checks against the robust
centre), score (first-order: one gradient, one dot product a reply) and the manifest
(canonical JSON, hash), on synthetic signed replies of the demo CNN (225k parameters) at 10,
100 and 1,000 nodes and of an 11M-parameter model at 20 nodes. FedAvg's ``aggregate_train``
runs on the same replies in the same process, in ABBA order (layer, FedAvg, FedAvg, layer),
and the ratio of the summed times is reported. Each size runs in a fresh process; also
reported: the layer's extra memory (peak resident set during its steps minus the resident set
holding the replies, via /proc/self/clear_refs + VmHWM) against the replies' float32 size.
Writes benchmarks/results/server_scale.json.

    python benchmarks/bench_server_scale.py [--sizes 10:cnn 100:cnn 1000:cnn 20:11m]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
RESULTS = Path(__file__).resolve().parent / "results" / "server_scale.json"


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(nodes: int, model: str) -> dict[str, Any]:
    import numpy as np
    from flwr.app import Array, ArrayRecord, MessageType, MetricRecord, RecordDict
    from flwr.serverapp.strategy import FedAvg
    from helpers import instruction
    from stellar_sdk import Keypair

    from flwr_stellar.payments.manifest import Contribution, RoundManifest
    from flwr_stellar.protocol.digest import Binding
    from flwr_stellar.protocol.signature import sign_reply, verify_content
    from strategies.intake import Intake, IntakeSettings
    from strategies.round import ModelReference, RoundState
    from strategies.scoring import FirstOrder
    from strategies.screening import Screen, Screening

    rng = np.random.default_rng(0)
    if model == "cnn":
        from flwr_stellar.app.models import build_model

        global_arrays = ArrayRecord(build_model("cnn").state_dict())
    else:  # an 11M-parameter stand-in: two dense layers
        global_arrays = ArrayRecord(
            {
                "fc1.weight": Array(rng.normal(size=(2048, 4096)).astype(np.float32)),
                "fc2.weight": Array(rng.normal(size=(1024, 2560)).astype(np.float32)),
                "fc2.bias": Array(np.zeros(1024, np.float32)),
            }
        )
    params = sum(a.numpy().size for a in global_arrays.values())
    bindings, messages = [], []
    for i in range(nodes):
        binding = Binding(7, 1, bytes([i % 256]) * 32, f"instr-{i}", "train")
        arrays = ArrayRecord(
            {
                k: Array(a.numpy() + 0.01 * rng.standard_normal(a.shape, np.float32))
                for k, a in global_arrays.items()
            }
        )
        content = RecordDict(
            {"arrays": arrays, "metrics": MetricRecord({"num-examples": 100 + i % 7})}
        )
        sign_reply(content, binding, Keypair.random())
        bindings.append(binding)
        messages.append(instruction(content))
    replies_bytes = nodes * params * 4
    gradient = ArrayRecord(
        {
            k: Array(rng.standard_normal(a.shape).astype(np.float32))
            for k, a in global_arrays.items()
        }
    )
    intake = Intake(IntakeSettings(max_num_examples=1000))
    screen = Screen(Screening())
    scorer = FirstOrder(gradient=lambda arrays: gradient)

    def layer() -> tuple[dict[str, float], int]:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        verdicts = [verify_content(m.content, b) for m, b in zip(messages, bindings, strict=True)]
        timings["verify_s"] = time.perf_counter() - started
        assert all(v.ok for v in verdicts)
        started = time.perf_counter()
        state = RoundState.received(1, MessageType.TRAIN, ModelReference(global_arrays), messages)
        state = intake(state)
        timings["intake_s"] = time.perf_counter() - started
        started = time.perf_counter()
        state = screen(state)
        timings["screen_s"] = time.perf_counter() - started
        started = time.perf_counter()
        state = scorer(state)
        timings["score_s"] = time.perf_counter() - started
        started = time.perf_counter()
        manifest = RoundManifest(
            run_id=7,
            server_round=1,
            config_hash="c" * 64,
            model_before="a" * 64,
            model_after="b" * 64,
            asset="DLC:G",
            budget=10**9,
            contributions=tuple(
                Contribution(f"P{c.node}", c.update_hash, c.num_examples, 0, 0)
                for c in state.candidates
            ),
            rejections=(),
        )
        manifest.hash()
        timings["manifest_s"] = time.perf_counter() - started
        return timings, len(state.candidates)

    def fedavg() -> float:
        started = time.perf_counter()
        arrays, _ = FedAvg().aggregate_train(1, messages)
        assert arrays is not None
        return time.perf_counter() - started

    Path("/proc/self/clear_refs").write_text("5")  # reset the peak to what is resident now
    baseline = _status("VmRSS")
    first, accepted = layer()  # A
    extra = _status("VmHWM") - baseline
    fedavg_s = [fedavg(), fedavg()]  # B B
    second, _ = layer()  # A
    layer_s = [sum(first.values()), sum(second.values())]
    return {
        "nodes": nodes,
        "model": model,
        "parameters": params,
        "accepted": accepted,
        **{k: round((first[k] + second[k]) / 2, 3) for k in first},
        "total_s": round(sum(layer_s) / 2, 3),
        "fedavg_aggregate_s": round(sum(fedavg_s) / 2, 3),
        "layer_vs_fedavg": round(sum(layer_s) / sum(fedavg_s), 2),
        "replies_float32_mb": round(replies_bytes / 2**20, 1),
        "extra_peak_mb": round(extra / 2**20, 1),
        "extra_vs_replies": round(extra / replies_bytes, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["10:cnn", "100:cnn", "1000:cnn", "20:11m"])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        nodes, model = args.one.split(":")
        print(json.dumps(measure(int(nodes), model)))
        return
    rows = []
    for size in args.sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one", size],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{row['nodes']:>5} x {row['parameters']:>9,} params: verify {row['verify_s']:.2f} s, "
            f"intake {row['intake_s']:.2f} s, screen {row['screen_s']:.2f} s, score "
            f"{row['score_s']:.2f} s, manifest {row['manifest_s']:.3f} s = {row['total_s']:.2f} s"
            f" vs FedAvg's aggregate_train {row['fedavg_aggregate_s']:.2f} s: "
            f"{row['layer_vs_fedavg']:.2f}x; extra memory {row['extra_peak_mb']:.0f} MB = "
            f"{row['extra_vs_replies']:.2f}x the replies' float32 size",
            flush=True,
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
