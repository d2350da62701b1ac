"""Privacy accounting: the accountant against Opacus and published values, the settings'
validation, the manifest's optional statement (non-DP manifests keep their exact bytes), the
audit's recomputation of epsilon, the report and the summary."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from flwr.clientapp.mod import LocalDpMod
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
)
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis.rdp import compute_rdp

from flwr_stellar.audit.run_audit import AuditReport, _check_privacy
from flwr_stellar.payments.manifest import (
    FORMAT_V4,
    MANIFEST_DIR,
    Contribution,
    ManifestError,
    ManifestStore,
    Rejection,
    Release,
    RoundManifest,
)
from flwr_stellar.privacy import (
    CLIP_TOLERANCE,
    PrivacySettings,
    PrivacyStatement,
    epsilon,
    round_step,
)

DELTA = 1e-5


# ------------------------------------------------------------------ the accountant
def test_epsilon_is_opacus_rdp_accountant_for_the_same_steps() -> None:
    """z=1.1, q=0.01, 10,000 steps, delta=1e-5: ours is Opacus' RDPAccountant, to the bit."""
    ours = epsilon([(1.1, 0.01)] * 10_000, DELTA)
    accountant = RDPAccountant()
    accountant.history = [(1.1, 0.01, 10_000)]
    assert ours == accountant.get_epsilon(DELTA)
    assert ours == pytest.approx(5.632, abs=1e-3)


@pytest.mark.parametrize(
    ("z", "epochs", "published"),
    [(1.12, 60, 2.92), (1.2, 10, 1.20)],
)
def test_the_rdp_curve_reproduces_tf_privacys_published_epsilons(
    z: float, epochs: int, published: float
) -> None:
    """TF Privacy's tutorials/README.md (MNIST: 60,000 examples, batch 256, delta 1e-5): noise
    1.12 for 60 epochs gives epsilon 2.92, noise 1.2 for 10 epochs 1.20, with the classic RDP
    conversion eps = min_a rdp(a) - log(delta) / (a - 1) over the same orders Opacus uses.
    Opacus' own conversion (Balle et al. 2020), which the statements use, is tighter."""
    q, steps = 256 / 60_000, epochs * 60_000 // 256
    orders = np.asarray(RDPAccountant.DEFAULT_ALPHAS)
    rdp = compute_rdp(q=q, noise_multiplier=z, steps=steps, orders=orders)
    classic = float(np.min(rdp - math.log(DELTA) / (orders - 1)))
    assert classic == pytest.approx(published, abs=0.005)
    ours = epsilon([(z, q)] * steps, DELTA)
    assert 0.7 * published < ours < published  # tighter, same order


def test_epsilon_composes_heterogeneous_rounds_and_grows() -> None:
    steps = [(1.0, 0.5), (0.8, 0.5), (1.0, 1.0)]
    values = [epsilon(steps[: i + 1], DELTA) for i in range(3)]
    assert values[0] < values[1] < values[2]
    assert epsilon([], DELTA) == 0.0
    assert epsilon([(1.0, 0.5)], 1e-3) < epsilon([(1.0, 0.5)], 1e-7)  # smaller delta, larger eps
    assert epsilon([(0.5, 1.0)], DELTA) > epsilon([(2.0, 1.0)], DELTA)


# ------------------------------------------------------------------ settings
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mechanism": "gaussian"}, "mechanism"),
        ({"noise_multiplier": 0.0}, "noise_multiplier"),
        ({"noise_multiplier": -1.0}, "noise_multiplier"),
        ({"noise_multiplier": math.nan}, "noise_multiplier"),
        ({"noise_multiplier": math.inf}, "noise_multiplier"),
        ({"noise_multiplier": True}, "noise_multiplier"),
        ({"noise_multiplier": "1.0"}, "noise_multiplier"),
        ({"clipping_norm": 0.0}, "clipping_norm"),
        ({"clipping_norm": 1e400}, "clipping_norm"),
        ({"delta": 0.0}, "delta"),
        ({"delta": 1.0}, "delta"),
        ({"delta": 2.0}, "delta"),
        ({"num_sampled": 0}, "num_sampled"),
        ({"num_sampled": True}, "num_sampled"),
        ({"num_sampled": 2.0}, "num_sampled"),
        ({"sampling": "shuffle"}, "sampling"),
        ({"mechanism": "local", "num_sampled": 3}, "num_sampled"),
    ],
)
def test_settings_refuse_bad_values_naming_the_field(kwargs: dict, field: str) -> None:
    values = {
        "mechanism": "server-clipping",
        "noise_multiplier": 1.0,
        "clipping_norm": 1.0,
        "num_sampled": 10,
    }
    with pytest.raises(ValueError, match=rf"PrivacySettings\.{field}"):
        PrivacySettings(**(values | kwargs))


def test_settings_from_flowers_strategies_and_mod() -> None:
    server = DifferentialPrivacyServerSideFixedClipping(FedAvg(), 1.3, 0.7, 8)
    assert PrivacySettings.of(server) == PrivacySettings.server_side(1.3, 0.7, 8)
    client = DifferentialPrivacyClientSideFixedClipping(FedAvg(), 0.9, 2.0, 4)
    assert PrivacySettings.of(client, delta=1e-6, sampling="none") == PrivacySettings(
        "client-clipping", 0.9, 2.0, 4, 1e-6, "none"
    )
    mod = LocalDpMod(clipping_norm=2.0, sensitivity=2.0, epsilon=5.0, delta=1e-4)
    local = PrivacySettings.of(mod)
    sigma = 2.0 * np.sqrt(2 * np.log(1.25 / 1e-4)) / 5.0  # LocalDpMod's own noise
    assert local.noise_multiplier == pytest.approx(sigma / (2 * 2.0))  # over sensitivity 2C
    assert local == PrivacySettings.local(2.0, 2.0, 5.0, 1e-4)
    assert not local.central and local.sampling == "none" and local.num_sampled == 0
    adaptive = DifferentialPrivacyServerSideAdaptiveClipping(
        FedAvg(), 1.0, 4, clipped_count_stddev=5.0
    )
    with pytest.raises(ValueError, match="adaptive clipping is not accounted"):
        PrivacySettings.of(adaptive)
    with pytest.raises(ValueError, match="FedAvg is not one of Flower's"):
        PrivacySettings.of(FedAvg())
    with pytest.raises(ValueError, match=r"PrivacySettings.local.epsilon"):
        PrivacySettings.local(1.0, 1.0, 0.0, 1e-5)
    with pytest.raises(ValueError, match=r"PrivacySettings.local.delta_release"):
        PrivacySettings.local(1.0, 1.0, 1.0, 1.5)


# ------------------------------------------------------------------ one round's release
def test_round_step_is_the_noise_over_the_aggregates_sensitivity() -> None:
    s = PrivacySettings.server_side(1.0, 1.0, 10)
    assert round_step(s, [5] * 10, 10, 40) == pytest.approx((1.0, 0.25))  # as calibrated
    assert round_step(s, [5] * 8, 10, 40) == pytest.approx((0.8, 0.25))  # two screened out
    assert round_step(s, [10, 30, 10], 10, 10)[0] == pytest.approx(1.0 * (50 / 30) / 10)
    assert round_step(s, [], 10, 10) is None  # no model released, nothing spent
    assert round_step(replace(s, sampling="none"), [5] * 10, 10, 40) == (1.0, 1.0)
    c = PrivacySettings.client_side(1.0, 1.0, 10)
    assert round_step(c, [5] * 10, 10, 10)[0] == pytest.approx(1 / (1 + CLIP_TOLERANCE))
    local = PrivacySettings.local(1.0, 2.0, 10.0, 1e-5)
    assert round_step(local, [], 3, 10) == (local.noise_multiplier, 1.0)
    assert round_step(local, [5], 0, 10) is None


# ------------------------------------------------------------------ the statement
def statement(**overrides: object) -> PrivacyStatement:
    s = PrivacySettings.server_side(1.0, 2.0, 4)
    step = round_step(s, [10, 10, 10, 10], 4, 8)
    assert step is not None
    base = PrivacyStatement.for_round(s, 4, 8, step, [step])
    return replace(base, **overrides)  # type: ignore[arg-type]


def test_statement_round_trips_and_refuses_malformed_documents() -> None:
    good = statement()
    assert PrivacyStatement.from_doc(json.loads(json.dumps(good.to_doc()))) == good
    assert good.epsilon_value == pytest.approx(epsilon([(1.0, 0.5)], DELTA), rel=1e-5)
    doc = good.to_doc()
    bad_docs = [
        [],
        {k: v for k, v in doc.items() if k != "epsilon"},
        doc | {"extra": 1},
        doc | {"epsilon": 1.5},  # a float
        doc | {"releases": True},
        doc | {"releases": -1},
        doc | {"noise_multiplier": "1.00"},  # not how the server writes 1.0
        doc | {"noise_multiplier": "nan"},
        doc | {"epsilon": "-1"},
        doc | {"epsilon": "1_0"},
        doc | {"sample_rate": ""},  # a release names both z and q
        doc | {"mechanism": "gaussian"},
        doc | {"delta": "1.5"},
    ]
    for bad in bad_docs:
        with pytest.raises((ValueError, TypeError)):
            PrivacyStatement.from_doc(bad)
    assert PrivacyStatement.from_doc(doc | {"epsilon": "inf"}).epsilon_value == math.inf


# ------------------------------------------------------------------ manifests
def manifest(**overrides: object) -> RoundManifest:
    values: dict[str, object] = {
        "run_id": 7,
        "server_round": 3,
        "config_hash": "c" * 64,
        "model_before": "a" * 64,
        "model_after": "b" * 64,
        "asset": "DLC:GISSUER",
        "budget": 1_000_000_000,
        "contributions": (
            Contribution("GB", "d" * 64, 40, 3, 300, "", 900_000, 750_000, 120),
            Contribution("GA", "e" * 64, 50, 5, 500),
        ),
        "rejections": (Rejection("non-finite", "GC"), Rejection("bad-signature")),
        "previous": "f" * 64,
        "distributor": "GDIST",
        "scoring": {"name": "first-order", "budget": 32},
        "releases": (Release("GA", 77, 800_000),),
        "terms": "9" * 64,
    }
    return RoundManifest(**(values | overrides))  # type: ignore[arg-type]


def test_manifests_without_privacy_keep_their_exact_hashes() -> None:
    """Hashes computed with the manifest module before the privacy field existed (commit
    05f0df6): anchored manifests of runs without DP must keep re-deriving to them."""
    m = manifest()
    assert m.hash() == "8ffdb471eaf73727c812aba2e5a174953ac8e98295c12a89c42b2062bd16c6f4"
    assert b"privacy" not in m.encode()
    v4 = replace(m, format=FORMAT_V4)
    assert v4.hash() == "f152dec1b64429732b94f9c919e19d03b18fca49bc38e820a738d2032462048b"
    assert RoundManifest.decode(m.encode()).encode() == m.encode()


def test_a_manifest_with_privacy_round_trips_and_its_statement_is_hashed(tmp_path: Path) -> None:
    m = manifest(privacy=statement())
    data = m.encode()
    assert b'"privacy":{"accountant":"opacus-rdp"' in data
    decoded = RoundManifest.decode(data)
    assert decoded.encode() == data and decoded.privacy == m.privacy
    assert m.hash() != manifest().hash()
    assert replace(m, privacy=statement(epsilon="0.5")).hash() != m.hash()
    store = ManifestStore(tmp_path)
    assert store.get(store.put(m)).privacy == m.privacy
    doc = json.loads(data)
    for bad in ({}, {"epsilon": "1"}, "1.0", None):
        with pytest.raises(ManifestError, match="not a round manifest"):
            RoundManifest.decode(json.dumps(doc | {"privacy": bad}, sort_keys=True).encode())


# ------------------------------------------------------------------ the audit's check
def chain(settings: PrivacySettings, rounds: int = 3) -> dict[int, RoundManifest]:
    """A run's manifests as the LedgerStrategy states them (round 2 releases no model)."""
    out, steps = {}, []
    for r in range(1, rounds + 1):
        contributions = (
            () if r == 2 else tuple(Contribution(f"G{i}", "d" * 64, 10 + i, 1, 0) for i in range(3))
        )
        model_after = "" if r == 2 else "b" * 64
        weights = [c.num_examples for c in contributions] if model_after else []
        step = round_step(settings, weights, 4, 8)
        steps += [step] if step else []
        out[r] = manifest(
            server_round=r,
            contributions=contributions,
            model_after=model_after,
            privacy=PrivacyStatement.for_round(settings, 4, 8, step, steps),
        )
    return out


def privacy_findings(chosen: dict[int, RoundManifest]) -> list[tuple[int | None, bool, str]]:
    report = AuditReport(7)
    _check_privacy(report, chosen)
    return [(f.server_round, f.ok, f.detail) for f in report.findings]


@pytest.mark.parametrize(
    "settings",
    [
        PrivacySettings.client_side(1.0, 2.0, 4),
        PrivacySettings.local(2.0, 4.0, 50.0, 1e-5),
    ],
    ids=["central", "local"],
)
def test_the_audit_recomputes_every_rounds_epsilon(settings: PrivacySettings) -> None:
    found = privacy_findings(chain(settings))
    assert [(r, ok) for r, ok, _ in found] == [(1, True), (2, True), (3, True)], found
    assert "recomputed" in found[-1][2]
    assert privacy_findings({r: replace(m, privacy=None) for r, m in chain(settings).items()}) == []


def forged(settings: PrivacySettings, r: int, **fields: object) -> dict[int, RoundManifest]:
    manifests = chain(settings)
    m = manifests[r]
    assert m.privacy is not None
    manifests[r] = replace(m, privacy=replace(m.privacy, **fields))  # type: ignore[arg-type]
    return manifests


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ({"epsilon": "0.001"}, "states epsilon 0.001, its parameters give"),
        ({"effective_noise_multiplier": "4.0"}, "its contributions give noise multiplier"),
        ({"effective_noise_multiplier": "", "sample_rate": ""}, "states no release"),
        ({"releases": 1}, "states 1 releases, the manifests give 2"),
        ({"noise_multiplier": "2.0"}, "noise_multiplier '2.0', round 1 states '1.0'"),
        ({"sampled": 2}, "3 contributions from 2 sampled"),
    ],
    ids=["epsilon", "effective-z", "hidden-release", "releases", "other-z", "sampled"],
)
def test_the_audit_flags_a_tampered_statement(tamper: dict, message: str) -> None:
    found = privacy_findings(forged(PrivacySettings.client_side(1.0, 2.0, 4), 3, **tamper))
    failed = [(r, detail) for r, ok, detail in found if not ok]
    assert [r for r, _ in failed] == [3] and message in failed[0][1], found


def test_the_audit_flags_a_round_that_dropped_its_statement() -> None:
    manifests = chain(PrivacySettings.client_side(1.0, 2.0, 4))
    manifests[2] = replace(manifests[2], privacy=None)
    failed = [(r, d) for r, ok, d in privacy_findings(manifests) if not ok]
    assert failed == [(2, "states no privacy, while the run's other rounds do")]


# ------------------------------------------------------------------ report and summary
def test_the_report_and_the_summary_show_epsilon_and_delta(tmp_path: Path) -> None:
    from flwr_stellar.app.summary import render_run_summary
    from flwr_stellar.report import write_run_report

    settings = PrivacySettings.client_side(1.0, 2.0, 4)
    manifests = chain(settings)
    store = ManifestStore(tmp_path / MANIFEST_DIR)
    for m in manifests.values():
        store.put(m)
    last = manifests[3].privacy
    assert last is not None
    page = write_run_report(tmp_path, run_audit=False).read_text()
    assert "<h2>Differential privacy</h2>" in page
    assert f"epsilon {last.epsilon} at delta 1e-05" in page and "no release" in page
    plain = tmp_path / "plain"
    ManifestStore(plain / MANIFEST_DIR).put(manifest())
    assert "Differential privacy" not in write_run_report(plain, run_audit=False).read_text()

    metrics = {
        "run_id": 7,
        "rounds": [{"round": r, "privacy_epsilon": float(m.privacy.epsilon)}
                   for r, m in manifests.items() if m.privacy],
        "privacy": last.to_doc(),
    }  # fmt: skip
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    text = render_run_summary(tmp_path, tmp_path / "run.log")
    assert "DP epsilon" in text
    assert f"differential privacy (client-clipping): epsilon {last.epsilon} at delta 1e-05" in text
