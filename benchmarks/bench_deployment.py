"""The same App run as a TLS + node-auth deployment (`flwr-stellar deploy`: ledger server,
SuperLink, SuperNodes as separate processes) and as a `flwr run` simulation, ABBA order in one
go: wall seconds of `flwr run` until the run's final status, per mode, and their ratio. The
deployment's one-off `deploy up` (certificates, keystores, registration, process start) is
reported apart. Writes benchmarks/results/deployment.json.

    python benchmarks/bench_deployment.py [--nodes 3] [--rounds 2] [--pairs 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from flwr_stellar.deploy.stack import FEDERATION, Deployment, DeploySettings
from flwr_stellar.flwr_run import flwr_run

PROJECT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "deployment.json"
FAST = [
    "dataset.max_train_examples=200",
    "dataset.server_val_size=500",
    "evaluation.central=false",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=2, help="ABBA pairs (each runs both modes)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    deployment = Deployment(DeploySettings(folder=work / "deploy", nodes=args.nodes))
    started = time.perf_counter()
    state = deployment.up()
    up_s = time.perf_counter() - started
    times: dict[str, list[float]] = {"deployment": [], "simulation": []}
    try:
        runs = 0

        def one(mode: str) -> None:
            nonlocal runs
            runs += 1
            out = work / f"run-{runs}"
            config = [f"num_rounds={args.rounds}", *FAST, f'output_dir="{out}"']
            t0 = time.perf_counter()
            if mode == "deployment":
                flwr_run(
                    app_dir=PROJECT,
                    flwr_home=deployment.flwr_home,
                    federation=FEDERATION,
                    run_config=[
                        *config,
                        "identity.dev_keystores=false",
                        'ledger.backend="horizon"',
                        f'ledger.horizon_url="{state.ledger_url}"',
                    ],
                )
            else:
                flwr_run(
                    app_dir=PROJECT,
                    flwr_home=work / "sim-home",
                    num_supernodes=args.nodes,
                    run_config=config,
                )
            times[mode].append(time.perf_counter() - t0)
            print(f"{mode}: {times[mode][-1]:.1f} s", flush=True)

        for _ in range(args.pairs):
            for mode in ("deployment", "simulation", "simulation", "deployment"):
                one(mode)
    finally:
        deployment.down()
    dep, sim = statistics.median(times["deployment"]), statistics.median(times["simulation"])
    result = {
        "nodes": args.nodes,
        "rounds": args.rounds,
        "deploy_up_s": round(up_s, 1),
        "deployment_s": [round(t, 1) for t in times["deployment"]],
        "simulation_s": [round(t, 1) for t in times["simulation"]],
        "median_deployment_s": round(dep, 1),
        "median_simulation_s": round(sim, 1),
        "ratio_deployment_vs_simulation": round(dep / sim, 3),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
