"""End to end: the reference app in Flower's simulation with central DP (the nodes clipping
inside the signing Mod, Flower's DP wrapper inside the LedgerStrategy) and a hostile node: every
manifest states epsilon, the audit recomputes it and passes, the summary shows it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flwr_stellar.app.simulation import run_app_simulation
from flwr_stellar.audit.cli import run_audit_for
from flwr_stellar.payments.manifest import read_run_manifests
from flwr_stellar.privacy import PrivacySettings, epsilon, round_step

pytestmark = pytest.mark.slow

NODES, ROUNDS = 4, 2


def test_a_dp_run_states_epsilon_in_every_manifest_and_passes_the_audit(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_app_simulation(
        {
            "num_rounds": ROUNDS,
            "output_dir": str(out),
            "model.name": "cnn_small",
            "dataset.max_train_examples": 100,
            "evaluation.central": False,
            "reward.scorer": "num-examples",
            "screening.lone_step.enabled": False,
            "attack.kind": "signflip",  # its update x -10, after its own clipping
            "attack.nodes": "1",
            "privacy.mode": "client",
            "privacy.noise_multiplier": 1.0,
            "privacy.clipping_norm": 1.0,
        },
        num_supernodes=NODES,
    )
    manifests = read_run_manifests(out)
    assert [m.server_round for m in manifests] == list(range(1, ROUNDS + 1))
    settings = PrivacySettings.client_side(1.0, 1.0, NODES)
    steps = []
    for m in manifests:
        s = m.privacy
        assert s is not None and s.mechanism == "client-clipping", m
        assert (s.sampled, s.population, s.num_sampled) == (NODES, NODES, NODES)
        assert [r.reason for r in m.rejections] == ["norm-too-large"]  # the unclipped attacker
        step = round_step(settings, [c.num_examples for c in m.contributions], NODES, NODES)
        assert step is not None
        steps.append(step)
        assert s.epsilon_value == pytest.approx(epsilon(steps, 1e-5), rel=1e-5)
    (report,) = run_audit_for(out)
    assert report.passed, report.render()
    assert sum(f.check == "privacy" and f.ok for f in report.findings) == ROUNDS
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["privacy"]["epsilon"] == manifests[-1].privacy.epsilon  # type: ignore[union-attr]
    assert [r["privacy_epsilon"] for r in metrics["rounds"] if "privacy_epsilon" in r] == [
        m.privacy.epsilon_value for m in manifests if m.privacy
    ]
    assert "Differential privacy" in (out / "report.html").read_text()
