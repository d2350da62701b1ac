"""End-to-end: a Hydra multirun of two jobs, each a real simulation with its own folder."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_multirun_two_jobs(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "flwr_stellar.app.experiment",
            "-m",
            "seed=1,2",
            "federation=local4",
            "federation.num_supernodes=2",
            "num_rounds=1",
            "dataset.max_train_examples=100",
            f"hydra.sweep.dir={sweep}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(jobs) == 2
    assert jobs[0].name.startswith("0_") and jobs[0].name.endswith("seed=1")
    assert jobs[1].name.startswith("1_") and jobs[1].name.endswith("seed=2")
    finals = []
    for job, seed in zip(jobs, (1, 2), strict=True):
        config = json.loads((job / "config.json").read_text())
        metrics = json.loads((job / "metrics.json").read_text())
        assert config["seed"] == seed and config["output_dir"] == str(job)
        assert metrics["status"] == "completed"
        assert (job / "model.pt").stat().st_size > 100_000
        finals.append(metrics["rounds"][-1]["central_accuracy"])
    assert finals[0] != finals[1]  # different seeds, different runs
    for job in jobs:  # each job's own report, with its audit
        assert "<h2>Audit</h2><p>Run" in (job / "report.html").read_text()
    sweep_page = (sweep / "sweep.html").read_text()
    assert all(job.name in sweep_page for job in jobs) and "data:image/png;base64," in sweep_page
    summary = (sweep / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("job,status,strategy,attack,attackers,attacker_fraction,seed")
    assert len(summary) == 3 and all(",completed,fedavg,none,0," in row for row in summary[1:])
    # what a newcomer reads: per job one plain progress line and the closing summary; the
    # INFO of Flower, alembic and Ray only in each job's run.log
    rounds = [line for line in proc.stdout.splitlines() if line.startswith("round ")]
    assert len(rounds) == 2 and all(line.startswith("round 1/1: ") for line in rounds), rounds
    assert "\x1b" not in proc.stdout and "\r" not in proc.stdout
    for noise in ("alembic", "configure_train", "Aggregated MetricRecord", "Final results"):
        assert noise not in proc.stdout + proc.stderr, noise
    assert proc.stdout.count("flwr-stellar: per-round results") == 2
    assert proc.stdout.count("audit of run ") == 2 and "PASS" in proc.stdout
    for job in jobs:
        assert f"full log: {job / 'run.log'}" in proc.stdout
        log = (job / "run.log").read_text()
        assert "[ROUND 1/1]" in log and "Aggregated MetricRecord" in log and "Final results" in log
    # alembic logs once a process, when Flower's simulation is first imported: in job 0
    assert (
        "INFO     alembic.runtime.plugins [MainThread] setup plugin"
        in (jobs[0] / "run.log").read_text()
    )


def test_invalid_config_fails_before_training(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "flwr_stellar.app.experiment",
            "dataset.alpha=0",
            f"hydra.run.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "dataset.alpha must be > 0" in proc.stderr
