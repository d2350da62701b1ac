"""Which orders of Flower's DP wrappers and mods compose with the LedgerStrategy, and what the
others do: real Flower mods (composed as ``ClientApp(mods=...)`` composes them), real Messages,
the real signing Mod and a real embedded ledger; the audit recomputes every stated epsilon."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.client.mod.utils import make_ffn
from flwr.clientapp.mod import LocalDpMod, fixedclipping_mod
from flwr.clientapp.typing import ClientAppCallable, Mod
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideAdaptiveClipping,
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    FedMedian,
)
from flwr.supercore.privacy_accounting import (
    NeighboringRelation,
    PrivacyConfig,
    SamplingMethod,
)
from flwr.supercore.task_identity import TaskIdentity
from helpers import RUN_ID, instruction, node_context

from flwr_stellar import (
    IntakeSettings,
    LedgerConfig,
    LedgerStrategy,
    PrivacySettings,
    RewardSettings,
    Screening,
    signing_mod,
    without_ledger_records,
)
from flwr_stellar.audit.cli import run_audit_for
from flwr_stellar.client.onboarding import onboarding_reply
from flwr_stellar.payments.manifest import RoundManifest, read_run_manifests
from flwr_stellar.privacy import CLIP_TOLERANCE, epsilon, round_step
from flwr_stellar.protocol.digest import array_record_hash

GLOBAL = ArrayRecord({"w": Array(np.ones(6, np.float32))})
NODES = 5
CLIP = 0.5  # an honest update's norm is ~0.74: every honest update is clipped


def honest_app(msg: Message, context) -> Message:  # type: ignore[no-untyped-def]
    pid = context.node_config["partition-id"]
    rng = np.random.default_rng([pid, int(msg.content["config"]["server-round"])])
    base = msg.content["arrays"]["w"].numpy()
    update = 0.1 * (np.arange(6) + 0.3 * rng.normal(size=6))
    arrays = ArrayRecord({"w": Array((base + update).astype(np.float32))})
    metrics = MetricRecord({"num-examples": 10, "train_loss": 0.5})
    return Message(RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=msg)


def boosted_app(msg: Message, context) -> Message:  # type: ignore[no-untyped-def]
    """A hostile node that signs its update boosted x10."""
    reply = honest_app(msg, context)
    base = msg.content["arrays"]["w"].numpy()
    w = reply.content["arrays"]["w"].numpy()
    reply.content["arrays"] = ArrayRecord({"w": Array((base + 10 * (w - base)).astype(np.float32))})
    return reply


class Nodes:
    """In-process nodes, each running its Mod chain the way ``ClientApp(mods=...)`` does."""

    def __init__(
        self,
        tmp: Path,
        mods: Sequence[Mod],
        app: ClientAppCallable = honest_app,
        odd: dict[int, tuple[Sequence[Mod], ClientAppCallable]] | None = None,
    ) -> None:
        self.run = SimpleNamespace(run_id=RUN_ID)
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, RUN_ID, 0
        self.tmp = tmp
        self.nodes = list(range(100, 100 + NODES))
        self.chains = {n: make_ffn(app, list(mods)) for n in self.nodes}
        for node, (node_mods, node_app) in (odd or {}).items():
            self.chains[node] = make_ffn(node_app, list(node_mods))
        self.sent: dict[tuple[int, int], str] = {}  # (round, node) -> hash of what it sent

    def get_node_ids(self) -> list[int]:
        return self.nodes

    def deliver(self, msg: Message) -> Message:
        node = msg.metadata.dst_node_id
        received = instruction(msg.content, msg.metadata.message_type, RUN_ID, node)
        context = node_context(self.tmp, partition=node - 100)
        if msg.metadata.message_type == "query.onboard":
            return onboarding_reply(received, context)
        reply = self.chains[node](received, context)
        if not reply.has_error():
            server_round = int(msg.content["config"]["server-round"])
            self.sent[(server_round, node)] = array_record_hash(reply.content["arrays"])
        return reply

    def send_and_receive(self, messages, *, timeout=None):  # type: ignore[no-untyped-def]
        return [self.deliver(m) for m in messages]


def fedavg() -> FedAvg:
    return FedAvg(fraction_train=1.0, min_available_nodes=1, min_train_nodes=1)


def config(tmp: Path, **overrides: object) -> LedgerConfig:
    values: dict[str, object] = {
        "output_dir": str(tmp / "out"),
        "reward": RewardSettings(budget_per_round="10"),
        "screening": Screening(),
        "intake": IntakeSettings(max_num_examples=1000),
        "scorer": "flat",
        "settle_timeout_s": 120,  # a loaded machine: anchoring must finish before the audit
        "receipt_timeout_s": 5,
    }
    return LedgerConfig(**(values | overrides))  # type: ignore[arg-type]


def rounds(
    strategy: object, grid: Nodes, count: int, *, opened: LedgerStrategy | None = None
) -> list[ArrayRecord]:
    """``count`` training rounds through ``strategy``'s configure/aggregate (as Strategy.start
    runs them); the models it released, in order."""
    arrays, released = GLOBAL, []
    ledger = opened if opened is not None else strategy
    assert isinstance(ledger, LedgerStrategy)
    ledger.open(num_rounds=count)
    for server_round in range(1, count + 1):
        messages = strategy.configure_train(server_round, arrays, ConfigRecord(), grid)  # type: ignore[attr-defined]
        replies = grid.send_and_receive(list(messages))
        new, _ = strategy.aggregate_train(server_round, replies)  # type: ignore[attr-defined]
        arrays = new if new is not None else arrays
        released.append(arrays)
    ledger.close()
    return released


def manifests(tmp: Path) -> list[RoundManifest]:
    return read_run_manifests(tmp / "out", RUN_ID)


def audit_failures(tmp: Path) -> list[str]:
    (report,) = run_audit_for(tmp / "out")
    return [f"round {f.server_round} {f.check}: {f.detail}" for f in report.failures]


def expected_epsilons(settings: PrivacySettings, ms: list[RoundManifest]) -> list[float]:
    steps, out = [], []
    for m in ms:
        weights = [c.num_examples for c in m.contributions] if m.model_after else []
        assert m.privacy is not None
        step = round_step(settings, weights, m.privacy.sampled, m.privacy.population)
        steps += [step] if step is not None else []
        out.append(epsilon(steps, settings.delta))
    return out


# ------------------------------------------------------------------ the orders that compose
def test_server_side_clipping_inside_screens_raw_updates_and_states_epsilon(tmp_path) -> None:
    """LedgerStrategy.wrap(DifferentialPrivacyServerSideFixedClipping(FedAvg)): intake and
    screening see each update as signed (the boosted one is caught at its real length, which
    the clipping would have hidden), the survivors are clipped and their mean noised."""
    inner = DifferentialPrivacyServerSideFixedClipping(fedavg(), 1.0, CLIP, NODES)
    privacy = PrivacySettings.of(inner)
    strategy = LedgerStrategy.wrap(inner, config(tmp_path), privacy=privacy)
    grid = Nodes(tmp_path, [signing_mod], odd={104: ([signing_mod], boosted_app)})
    released = rounds(strategy, grid, 2)

    for server_round in (1, 2):
        verdicts = strategy.verdicts[(server_round, "train")]
        assert [(r.node, r.reason) for r in verdicts.rejected] == [(104, "norm-outlier")]
        assert len(verdicts.accepted) == NODES - 1
    ms = manifests(tmp_path)
    assert [m.server_round for m in ms] == [1, 2]
    for m in ms:  # the manifest cites what each node signed (unclipped), not the clipped copy
        assert {c.update_hash for c in m.contributions} == {
            grid.sent[(m.server_round, n)] for n in range(100, 104)
        }
        assert m.privacy is not None and m.privacy.mechanism == "server-clipping"
        assert m.privacy.sampled == NODES and m.privacy.population == NODES
        assert float(m.privacy.effective_noise_multiplier) == pytest.approx(1.0 * 4 / 5)
    assert [m.privacy.releases for m in ms if m.privacy] == [1, 2]
    stated = [m.privacy.epsilon_value for m in ms if m.privacy]
    assert stated == pytest.approx(expected_epsilons(privacy, ms), rel=1e-5)
    assert stated[1] > stated[0] > 0
    assert ms[0].model_after == array_record_hash(released[0])  # the noised model, as released
    assert ms[1].model_before == ms[0].model_after
    step = released[0]["w"].numpy() - GLOBAL["w"].numpy()
    clipped_mean = CLIP * np.arange(6) / np.linalg.norm(np.arange(6))  # roughly
    assert np.linalg.norm(step - clipped_mean) < 0.6  # noise std 1.0 x 0.5 / 5 per coordinate
    assert strategy.outcomes[1].payouts and len(strategy.outcomes[1].payouts) == NODES - 1
    assert audit_failures(tmp_path) == []


def test_client_side_clipping_with_the_mod_inside_the_signing_mod(tmp_path) -> None:
    """ClientApp(mods=[signing_mod, without_ledger_records(fixedclipping_mod)]) with
    LedgerStrategy.wrap(DifferentialPrivacyClientSideFixedClipping(FedAvg)): the signature
    covers the clipped update; a node that does not clip is rejected, unpaid."""
    inner = DifferentialPrivacyClientSideFixedClipping(fedavg(), 2.0, CLIP, NODES)
    privacy = PrivacySettings.of(inner, sampling="none")
    strategy = LedgerStrategy.wrap(inner, config(tmp_path), privacy=privacy)
    clipping = [signing_mod, without_ledger_records(fixedclipping_mod)]
    grid = Nodes(tmp_path, clipping, odd={103: ([signing_mod], honest_app)})  # 103 skips it
    rounds(strategy, grid, 2)

    for server_round in (1, 2):
        verdicts = strategy.verdicts[(server_round, "train")]
        assert [(r.node, r.reason) for r in verdicts.rejected] == [(103, "norm-too-large")]
        assert f"> max_norm {CLIP * (1 + CLIP_TOLERANCE):.4g}" in verdicts.rejected[0].detail
    ms = manifests(tmp_path)
    for m in ms:
        assert m.privacy is not None and m.privacy.mechanism == "client-clipping"
        assert m.privacy.sample_rate == "1.0"  # sampling="none": no amplification claimed
        assert len(m.contributions) == NODES - 1 and all(c.payout > 0 for c in m.contributions)
    stated = [m.privacy.epsilon_value for m in ms if m.privacy]
    assert stated == pytest.approx(expected_epsilons(privacy, ms), rel=1e-5)
    assert audit_failures(tmp_path) == []


def test_local_dp_mod_inside_the_signing_mod(tmp_path) -> None:
    """ClientApp(mods=[signing_mod, LocalDpMod(...)]): nodes noise before they sign; the
    statement composes one release a round."""
    mod = LocalDpMod(clipping_norm=CLIP, sensitivity=2 * CLIP, epsilon=200.0, delta=1e-5)
    privacy = PrivacySettings.of(mod)
    strategy = LedgerStrategy.wrap(fedavg(), config(tmp_path), privacy=privacy)
    grid = Nodes(tmp_path, [signing_mod, mod])
    rounds(strategy, grid, 2)

    ms = manifests(tmp_path)
    assert [len(m.contributions) for m in ms] == [NODES, NODES], [m.rejections for m in ms]
    z = 2 * CLIP * np.sqrt(2 * np.log(1.25 / 1e-5)) / 200.0 / (2 * CLIP)
    assert privacy.noise_multiplier == pytest.approx(z)
    assert [m.privacy.epsilon_value for m in ms if m.privacy] == pytest.approx(
        [epsilon([(z, 1.0)], 1e-5), epsilon([(z, 1.0)] * 2, 1e-5)], rel=1e-5
    )
    assert audit_failures(tmp_path) == []


# ------------------------------------------------------------------ the orders that break
def test_fixedclipping_mod_without_the_adapter_refuses_every_instruction_loudly(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    """Flower's fixedclipping_mod counts the instruction's ConfigRecords: with the challenge
    and terms beside the strategy's config it refuses; the server says so once, with the fix,
    and pays nobody for a round that produced no model."""
    inner = DifferentialPrivacyClientSideFixedClipping(fedavg(), 1.0, CLIP, NODES)
    strategy = LedgerStrategy.wrap(inner, config(tmp_path), privacy=PrivacySettings.of(inner))
    grid = Nodes(tmp_path, [signing_mod, fixedclipping_mod])
    with caplog.at_level(logging.ERROR):
        rounds(strategy, grid, 1)
    verdicts = strategy.verdicts[(1, "train")]
    assert {r.reason for r in verdicts.rejected} == {"error-reply"} and not verdicts.accepted
    told = [r.getMessage() for r in caplog.records if "without_ledger_records" in r.getMessage()]
    assert len(told) == 1, told
    (m,) = manifests(tmp_path)
    assert m.model_after == "" and m.total_paid == 0
    assert m.privacy is not None and m.privacy.releases == 0 and m.privacy.epsilon == "0"


@pytest.mark.parametrize(
    "mods",
    [
        [without_ledger_records(fixedclipping_mod), signing_mod],
        [
            LocalDpMod(clipping_norm=CLIP, sensitivity=2 * CLIP, epsilon=200.0, delta=1e-5),
            signing_mod,
        ],
    ],
    ids=["fixedclipping-before-signing", "localdp-before-signing"],
)
def test_a_dp_mod_before_the_signing_mod_breaks_every_signature(tmp_path, mods) -> None:
    """mods=[dp_mod, signing_mod]: the DP Mod changes the reply after it was signed."""
    inner = DifferentialPrivacyClientSideFixedClipping(fedavg(), 1.0, CLIP, NODES)
    strategy = LedgerStrategy.wrap(inner, config(tmp_path))
    grid = Nodes(tmp_path, mods)
    rounds(strategy, grid, 1)
    verdicts = strategy.verdicts[(1, "train")]
    assert [r.reason for r in verdicts.rejected] == ["bad-signature"] * NODES
    (m,) = manifests(tmp_path)
    assert not m.contributions and m.total_paid == 0


def test_a_dp_wrapper_outside_the_ledger_strategy_fails_at_the_first_round(tmp_path) -> None:
    """DifferentialPrivacyServerSideFixedClipping(LedgerStrategy(...)).start(): Flower's start
    never opens the ledger; the first instruction raises, naming the order that works."""
    ledger = LedgerStrategy.wrap(fedavg(), config(tmp_path))
    outer = DifferentialPrivacyServerSideFixedClipping(ledger, 1.0, CLIP, NODES)
    grid = Nodes(tmp_path, [signing_mod])
    with pytest.raises(RuntimeError, match=r"wrap the other way round: LedgerStrategy.wrap\("):
        outer.start(grid=grid, initial_arrays=GLOBAL, num_rounds=1)  # type: ignore[arg-type]
    assert not (tmp_path / "out" / "manifests").exists()


def test_server_clipping_outside_an_opened_ledger_strategy_fails_every_signature(
    tmp_path,
) -> None:
    """Opened by hand, the outer wrapper clips the replies before the LedgerStrategy verifies
    them: every clipped reply fails its signature and nobody is paid."""
    ledger = LedgerStrategy.wrap(fedavg(), config(tmp_path))
    outer = DifferentialPrivacyServerSideFixedClipping(ledger, 1.0, CLIP, NODES)
    rounds(outer, Nodes(tmp_path, [signing_mod]), 1, opened=ledger)
    assert [r.reason for r in ledger.verdicts[(1, "train")].rejected] == ["bad-signature"] * NODES
    (m,) = manifests(tmp_path)
    assert m.total_paid == 0


def test_client_dp_wrapper_outside_releases_a_model_no_manifest_names(tmp_path) -> None:
    """Opened by hand, DifferentialPrivacyClientSideFixedClipping(LedgerStrategy) pays, but
    noises the aggregate after the manifest named it: the audit's model-link fails."""
    ledger = LedgerStrategy.wrap(fedavg(), config(tmp_path))
    outer = DifferentialPrivacyClientSideFixedClipping(ledger, 1.0, CLIP, NODES)
    grid = Nodes(tmp_path, [signing_mod, without_ledger_records(fixedclipping_mod)])
    released = rounds(outer, grid, 2, opened=ledger)
    ms = manifests(tmp_path)
    assert all(m.contributions for m in ms)
    assert ms[0].model_after != array_record_hash(released[0])
    found = audit_failures(tmp_path)
    assert any(f.startswith("round 1 model-link: model after") for f in found), found


# ------------------------------------------------------------------ refused when built
def central(**overrides: object) -> PrivacySettings:
    values: dict[str, object] = {
        "mechanism": "server-clipping",
        "noise_multiplier": 1.0,
        "clipping_norm": CLIP,
        "num_sampled": NODES,
    }
    return PrivacySettings(**(values | overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("inner", "privacy", "match"),
    [
        (fedavg, central(), "is not one of Flower's DifferentialPrivacy"),
        (
            lambda: DifferentialPrivacyServerSideFixedClipping(fedavg(), 1.5, CLIP, NODES),
            central(),
            r"privacy.noise_multiplier is 1.0, but the inner .* has 1.5",
        ),
        (
            lambda: DifferentialPrivacyClientSideFixedClipping(fedavg(), 1.0, CLIP, NODES),
            central(),
            "privacy.mechanism is 'server-clipping'",
        ),
        (
            lambda: DifferentialPrivacyServerSideFixedClipping(fedavg(), 1.0, CLIP, 3),
            central(),
            "privacy.num_sampled is 5",
        ),
        (
            lambda: DifferentialPrivacyServerSideFixedClipping(
                FedMedian(fraction_train=1.0), 1.0, CLIP, NODES
            ),
            central(),
            "holds FedMedian; the accounting is for FedAvg",
        ),
        (
            lambda: DifferentialPrivacyServerSideFixedClipping(
                fedavg(),
                1.0,
                CLIP,
                NODES,
                accountant=_flower_accountant(),
            ),
            central(),
            "Flower's own accountant",
        ),
        (
            lambda: DifferentialPrivacyClientSideAdaptiveClipping(
                fedavg(), 1.0, NODES, clipped_count_stddev=5.0
            ),
            central(mechanism="client-clipping"),
            "adaptive clipping is not accounted",
        ),
        (
            lambda: DifferentialPrivacyServerSideFixedClipping(fedavg(), 1.0, CLIP, NODES),
            PrivacySettings.local(CLIP, 2 * CLIP, 10.0, 1e-5),
            "states local DP, but the inner",
        ),
    ],
    ids=[
        "no-dp-inside",
        "other-z",
        "other-mechanism",
        "other-m",
        "not-fedavg",
        "flower-accountant",
        "adaptive",
        "local-over-central",
    ],
)
def test_a_statement_the_composition_would_make_untrue_is_refused_when_built(
    tmp_path, inner: Callable[[], object], privacy: PrivacySettings, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        LedgerStrategy.wrap(inner(), config(tmp_path), privacy=privacy)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()  # nothing was opened or written


def _flower_accountant() -> SimpleNamespace:
    """What Flower's wrapper reads of an accountant when it is built (its RdpAccountant needs
    Google's dp-accounting, which this project does not install)."""
    return SimpleNamespace(
        config=PrivacyConfig(
            1e-5, NODES, NeighboringRelation.ADD_OR_REMOVE_ONE, SamplingMethod.NO_AMPLIFICATION
        )
    )


def test_client_side_clipping_needs_screening_and_tightens_max_norm(tmp_path) -> None:
    inner = DifferentialPrivacyClientSideFixedClipping(fedavg(), 1.0, CLIP, NODES)
    privacy = PrivacySettings.of(inner)
    with pytest.raises(ValueError, match=r"LedgerConfig.screening.enabled must be True"):
        LedgerStrategy.wrap(
            inner, config(tmp_path, screening=Screening(enabled=False)), privacy=privacy
        )
    strategy = LedgerStrategy.wrap(inner, config(tmp_path), privacy=privacy)
    (max_norm,) = [c for c in strategy.config.screening.checks if c.name == "max_norm"]
    assert max_norm.max_norm == pytest.approx(CLIP * (1 + CLIP_TOLERANCE))  # type: ignore[attr-defined]
    plain = LedgerStrategy.wrap(fedavg(), config(tmp_path))
    assert plain.config_hash != strategy.config_hash


def test_a_dp_wrapper_without_a_statement_is_warned_about(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    inner = DifferentialPrivacyServerSideFixedClipping(fedavg(), 1.0, CLIP, NODES)
    with caplog.at_level(logging.WARNING):
        strategy = LedgerStrategy.wrap(inner, config(tmp_path))
    assert strategy.privacy is None
    assert any("no privacy= was given" in r.getMessage() for r in caplog.records)


def test_the_audit_flags_a_manifest_whose_epsilon_was_rewritten(tmp_path) -> None:
    """A forged manifest (its epsilon lowered, re-hashed and renamed) fails the privacy check
    on its own parameters, besides not being the anchored one."""
    inner = DifferentialPrivacyServerSideFixedClipping(fedavg(), 1.0, CLIP, NODES)
    strategy = LedgerStrategy.wrap(inner, config(tmp_path), privacy=PrivacySettings.of(inner))
    rounds(strategy, Nodes(tmp_path, [signing_mod]), 1)
    (m,) = manifests(tmp_path)
    assert m.privacy is not None
    from dataclasses import replace

    forged = replace(m, privacy=replace(m.privacy, epsilon="0.01"))
    store = tmp_path / "out" / "manifests"
    (store / f"{m.hash()}.json").unlink()
    (store / f"{forged.hash()}.json").write_bytes(forged.encode())
    found = audit_failures(tmp_path)
    assert any(
        f.startswith(
            f"round 1 privacy: states epsilon 0.01, its parameters give {m.privacy.epsilon}"
        )
        for f in found
    ), found
    assert any(f.startswith("round 1 anchor: no successful transaction") for f in found), found
    shutil.rmtree(tmp_path / "out")
