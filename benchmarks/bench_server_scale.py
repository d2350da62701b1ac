"""Server-side cost of one round at scale: verify (signatures over each reply's canonical
digest), screen (decode into the delta matrix, relative checks against the robust centre),
score (first-order: one gradient, one dot product a reply) and the manifest (canonical JSON,
hash), on synthetic signed replies of the demo CNN (225k parameters) at 10, 100 and 1,000
nodes and of an 11M-parameter model at 20 nodes. Each size runs in a fresh process; reported:
seconds per step, and the layer's extra memory (peak resident set during the steps minus the
resident set holding the replies, via /proc/self/clear_refs + VmHWM) against the replies' own
float32 size. Writes benchmarks/results/server_scale.json.

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
    from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict
    from helpers import instruction
    from stellar_sdk import Keypair

    from flwr_stellar.payments.manifest import Contribution, RoundManifest
    from flwr_stellar.protocol.digest import Binding
    from flwr_stellar.protocol.signature import sign_reply, verify_content
    from strategies.scoring import Contribution as Scored
    from strategies.scoring import RoundUpdates, ScoringSettings, score
    from strategies.screening import Candidate, ScreeningSettings, screen

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
    bindings, replies = [], []
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
        replies.append(content)
    replies_bytes = nodes * params * 4
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak to what is resident now
    baseline = _status("VmRSS")
    timings: dict[str, float] = {}

    started = time.perf_counter()
    verdicts = [verify_content(c, b) for c, b in zip(replies, bindings, strict=True)]
    timings["verify_s"] = time.perf_counter() - started
    assert all(v.ok for v in verdicts)

    started = time.perf_counter()
    candidates = [Candidate(i, instruction(c)) for i, c in enumerate(replies)]
    screened = screen(candidates, global_arrays, ScreeningSettings(max_num_examples=1000))
    timings["screen_s"] = time.perf_counter() - started
    assert screened.base is not None and screened.deltas is not None

    gradient = rng.standard_normal(params, np.float32)
    started = time.perf_counter()
    accepted = screened.accepted
    scores = score(
        ScoringSettings("first-order"),
        [Scored(f"P{c.node}", c.num_examples) for c in accepted],
        RoundUpdates(
            base=screened.base,
            deltas=screened.deltas,
            rows=[c.row for c in accepted],
            utility=lambda flat: 0.0,
            utility_gradient=lambda flat: gradient,
        ),
    )
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
            Contribution(
                f"P{c.node}", c.update_hash, c.num_examples, scores.weights[f"P{c.node}"], 0
            )
            for c in accepted
        ),
        rejections=(),
    )
    manifest.hash()
    timings["manifest_s"] = time.perf_counter() - started
    peak = _status("VmHWM")
    extra = peak - baseline
    return {
        "nodes": nodes,
        "model": model,
        "parameters": params,
        "accepted": len(accepted),
        **{k: round(v, 3) for k, v in timings.items()},
        "total_s": round(sum(timings.values()), 3),
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
            f"screen {row['screen_s']:.2f} s, score {row['score_s']:.2f} s, manifest "
            f"{row['manifest_s']:.3f} s; extra memory {row['extra_peak_mb']:.0f} MB = "
            f"{row['extra_vs_replies']:.2f}x the replies' float32 size",
            flush=True,
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
