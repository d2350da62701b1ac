"""End-to-end: `flwr run .` through the CLI helper; real status, no processes left behind."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flwr_stellar.flwr_run import local_superlink_pids

pytestmark = pytest.mark.slow


def flwr_run(tmp_path: Path, *run_config: str) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "flwr-home"
    try:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "flwr_stellar.cli",
                "flwr-run",
                "--app-dir",
                str(Path(__file__).resolve().parent.parent),
                "--flwr-home",
                str(home),
                "--num-supernodes",
                "2",
                "--run-config",
                *run_config,
            ],
            capture_output=True,
            text=True,
            timeout=400,
            check=False,
        )
    finally:
        assert local_superlink_pids(home.resolve()) == [], "SuperLink left running"


def test_flwr_run_completes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = flwr_run(
        tmp_path, "num_rounds=1", "dataset.max_train_examples=100", f'output_dir="{out}"'
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "completed" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["rounds"][-1]["round"] == 1


def test_failed_run_is_reported_as_failed(tmp_path: Path) -> None:
    proc = flwr_run(tmp_path, "num_rounds=0")
    assert proc.returncode == 1
    assert "finished:failed" in proc.stderr
    assert "num_rounds must be >= 1" in proc.stdout
