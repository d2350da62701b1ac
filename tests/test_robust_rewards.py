"""Rewards that cannot be gamed (issue 20), stage by stage on real Messages: the norm bound,
copies by direction, claims held to the peers', reputation, one pseudonym per node per run."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp.strategy import FedAvg
from helpers import instruction, node_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ledger_strategy import FakeGrid, honest_app, layer  # noqa: F401 - fixture

from flwr_stellar.payments.manifest import Contribution, RoundManifest
from flwr_stellar.reasons import Reason as Reject
from flwr_stellar.reasons import Rejected
from strategies.bounding import Bound, NormBound, others_medians
from strategies.intake import Intake, IntakeSettings
from strategies.reputation import PPM, Reputation, ReputationBook, Weigh
from strategies.round import Candidate, ModelReference, RecentUpdate, RoundState
from strategies.scoring import FirstOrder, GradientSimilarity
from strategies.screening import Screening, ScreeningHistory, default_checks, screen_replies

DIM = 4000  # a model big enough for the direction checks (they skip tiny ones)
BASE = np.random.default_rng(0).normal(size=DIM).astype(np.float32)
TEMPLATE = ArrayRecord({"w": Array(BASE.copy())})
INTAKE = IntakeSettings(max_num_examples=1_000_000)


def reply(node: int, update: np.ndarray, n: int = 100) -> Message:
    content = RecordDict(
        {
            "arrays": ArrayRecord({"w": Array((BASE + update).astype(np.float32))}),
            "metrics": MetricRecord({"num-examples": n, "train_loss": 0.5}),
        }
    )
    msg = instruction(content)
    msg.metadata.__dict__["_src_node_id"] = node
    return msg


def honest_updates(count: int, seed: int = 1, spread: float = 1.0) -> list[np.ndarray]:
    """Non-IID-like updates: a shared direction plus as much again of each node's own."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=DIM)
    return [
        (0.01 * (common + spread * rng.normal(size=DIM)) * rng.uniform(0.7, 1.3)).astype(np.float32)
        for _ in range(count)
    ]


def taken_in(updates: list[np.ndarray], claims: list[int] | None = None) -> RoundState:
    claims = claims or [100] * len(updates)
    state = RoundState.received(
        1,
        MessageType.TRAIN,
        ModelReference(TEMPLATE),
        [reply(i, u, n) for i, (u, n) in enumerate(zip(updates, claims, strict=True))],
    )
    state = Intake(INTAKE)(state)
    named = tuple(replace(c, pseudonym=f"P{c.node}") for c in state.candidates)
    return replace(state, candidates=named)  # as verification names them


def bounded(updates: list[np.ndarray], mode: str = "normalize") -> RoundState:
    return Bound(NormBound(mode), "arrays")(taken_in(updates))


def sent_update(c: Candidate) -> np.ndarray:
    return c.reply.content["arrays"]["w"].numpy().astype(np.float64) - BASE


def shares(state: RoundState, scorer) -> np.ndarray:
    scores = np.asarray([scorer(state).scores[c.pseudonym] for c in state.candidates], float)
    return scores / scores.sum() if scores.sum() else scores


# ------------------------------------------------------------------ the norm bound
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(3, 8),
    seed=st.integers(0, 10_000),
    k=st.floats(2.0, 10.0),
    pick=st.integers(0, 7),
)
def test_an_update_times_k_enters_the_model_and_earns_exactly_as_itself(count, seed, k, pick):
    updates = honest_updates(count, seed)
    i = pick % count
    boosted = [u * np.float32(k) if j == i else u for j, u in enumerate(updates)]
    plain, scaled = bounded(updates), bounded(boosted)
    # its own contribution to the model: the same vector, whatever k
    np.testing.assert_allclose(
        sent_update(scaled.candidates[i]), sent_update(plain.candidates[i]), rtol=2e-4, atol=5e-7
    )
    # what it earns: the same share (gradient similarity; first order on a server gradient)
    gradient = np.random.default_rng(seed + 1).normal(size=DIM).astype(np.float32)
    first_order = FirstOrder(gradient=lambda _: ArrayRecord({"w": Array(gradient)}))
    for scorer in (GradientSimilarity(), first_order):
        before, after = shares(plain, scorer), shares(scaled, scorer)
        assert after[i] <= before[i] * (1 + 1e-3) + 1e-9, scorer.name  # float32 rounding


def test_normalize_brings_every_update_to_the_others_median_and_clip_only_shortens() -> None:
    updates = honest_updates(5)
    updates[3] *= 10  # boosted
    norms = np.asarray([np.linalg.norm(u) for u in updates])
    medians = others_medians(norms)
    state = bounded(updates)
    for c, median in zip(state.candidates, medians, strict=True):
        assert np.linalg.norm(sent_update(c)) == pytest.approx(median, rel=1e-4)
        assert c.scale == pytest.approx(median / norms[c.node], rel=1e-6)
    clipped = bounded(updates, "clip")
    for c, norm, median in zip(clipped.candidates, norms, medians, strict=True):
        assert np.linalg.norm(sent_update(c)) == pytest.approx(min(norm, median), rel=1e-4)
    off = bounded(updates, "off")
    assert all(c.scale == 1.0 for c in off.candidates)


def test_a_round_of_two_shares_one_bound_and_bad_modes_are_refused() -> None:
    assert others_medians(np.asarray([1.0, 3.0])) == [2.0, 2.0]
    assert others_medians(np.asarray([1.0, 2.0, 10.0])) == [6.0, 5.5, 1.5]
    with pytest.raises(ValueError, match=r"NormBound\.mode"):
        NormBound("sometimes")


# ------------------------------------------------------------------ copies by direction
def screened(replies, **kwargs) -> RoundState:
    return screen_replies(replies, TEMPLATE, Screening(), INTAKE, **kwargs)


def test_a_jittered_copy_is_rejected_with_its_original_and_honest_nodes_pass() -> None:
    updates = honest_updates(6)
    rng = np.random.default_rng(5)
    copy = updates[0] + 0.1 * float(np.std(updates[0])) * rng.normal(size=DIM)
    result = screened([reply(i, u) for i, u in enumerate(updates)] + [reply(9, copy)])
    rejected = {r.node: r.reason for r in result.rejected}
    assert rejected == {0: Reject.COPIED_UPDATE, 9: Reject.COPIED_UPDATE}


def test_where_every_honest_update_agrees_nothing_is_a_copy() -> None:
    """Smooth or IID problems: honest updates at cosine ~0.98 to each other all pass."""
    result = screened([reply(i, u) for i, u in enumerate(honest_updates(6, spread=0.15))])
    assert result.rejected == ()


def test_a_copy_of_another_nodes_update_of_an_earlier_round_is_rejected() -> None:
    history = ScreeningHistory.of(Screening())
    index = history.sketch_index(DIM)
    first = honest_updates(5, seed=1)
    later = honest_updates(5, seed=2)
    recent = tuple(RecentUpdate(1, i, u[index]) for i, u in enumerate(first))
    rng = np.random.default_rng(3)
    copier = first[2] + 0.1 * float(np.std(first[2])) * rng.normal(size=DIM)
    own_again = first[4] * 0.9 + 0.05 * later[4]  # node 4 repeats itself: its own data
    replies = [reply(i, u) for i, u in enumerate(later[:4])]
    replies += [reply(4, own_again), reply(7, copier)]
    state = RoundState.received(
        2,
        MessageType.TRAIN,
        ModelReference(TEMPLATE),
        replies,
        recent=recent,
        sketch_index=index,
    )
    from strategies.screening import Screen

    result = Screen(Screening())(Intake(INTAKE)(state))
    assert {r.node: r.reason for r in result.rejected} == {7: Reject.COPIED_UPDATE}
    assert "node 2's update of round 1" in result.rejected[0].detail


def test_history_keeps_sketches_of_recent_rounds_and_the_global_step() -> None:
    history = ScreeningHistory.of(Screening())
    assert history.recent_rounds == 2 and history.sketching
    index = history.sketch_index(DIM)
    assert index is not None and len(index) == min(DIM, 8192)
    state = bounded(honest_updates(4))
    history.record(replace(state, sketch_index=index))
    step = ModelReference(ArrayRecord({"w": Array(BASE + 0.01)}))
    history.record(
        replace(bounded(honest_updates(4)), server_round=2, model=step, sketch_index=index)
    )
    kept = history.recent(3)
    assert sorted({(u.server_round, u.node) for u in kept}) == [
        (1, -1),
        *[(1, i) for i in range(4)],
        *[(2, i) for i in range(4)],
    ]
    off = ScreeningHistory.of(Screening(enabled=False))
    assert off.sketch_index(DIM) is None


# ------------------------------------------------------------------ claims
def test_a_claim_far_above_the_peers_is_rejected_but_not_without_peers() -> None:
    updates = honest_updates(5)
    claims = [100, 120, 90, 110, 999_999]
    result = screened(
        [reply(i, u, n) for i, (u, n) in enumerate(zip(updates, claims, strict=True))]
    )
    assert {r.node: r.reason for r in result.rejected} == {4: Reject.CLAIM_OUTLIER}
    two = screened([reply(0, updates[0], 100), reply(1, updates[1], 999_999)])
    assert two.rejected == ()  # below min_peers: only intake's absolute bound applies


def test_gradient_similarity_pays_direction_not_claims_or_noise() -> None:
    updates = honest_updates(6)
    rng = np.random.default_rng(9)
    noise = (0.01 * rng.normal(size=DIM) * 2).astype(np.float32)
    reversed_ = -updates[0]
    state = bounded([*updates, noise, reversed_])
    state = replace(
        state,
        candidates=tuple(
            replace(c, num_examples=999_999 if c.node == 1 else c.num_examples)
            for c in state.candidates
        ),
    )
    scored = GradientSimilarity()(state)
    score = {c.node: scored.scores[c.pseudonym] for c in state.candidates}
    assert score[7] == 0  # reversed
    assert score[6] < 0.2 * min(score[i] for i in range(6))  # noise
    assert score[1] <= 1.5 * np.median([score[i] for i in range(6)])  # the claim buys nothing


# ------------------------------------------------------------------ reputation
def test_trust_is_earned_slowly_and_lost_fast() -> None:
    book = ReputationBook(Reputation())
    state = bounded(honest_updates(4))
    paid = replace(state, scores={c.pseudonym: 1 for c in state.candidates})
    for _ in range(3):
        book.record(paid)
    assert book.of(0) == pytest.approx(1 - 0.5 * 0.7**3)
    rejected = replace(
        paid, rejected=(Rejected(0, Reject.COSINE, ""),), candidates=paid.candidates[1:]
    )
    book.record(rejected)
    assert book.of(0) == pytest.approx((1 - 0.5 * 0.7**3) * 0.25)
    book.record(replace(paid, rejected=(Rejected(1, Reject.BAD_SIGNATURE, ""),)))
    assert book.of(1) > 0.8  # a failed signature says nothing about the node's data


def test_scores_are_the_scorers_weights_times_trust_in_millionths() -> None:
    state = bounded(honest_updates(3))
    state = replace(
        state,
        scores={c.pseudonym: 10 for c in state.candidates},
        reputation={0: 1.0, 1: 0.25},
    )
    weighed = Weigh(Reputation())(state)
    by_node = {c.node: weighed.scores[c.pseudonym] for c in state.candidates}
    assert by_node == {0: 10 * PPM, 1: 10 * PPM // 4, 2: 10 * PPM // 2}  # 2 is new: 0.5
    assert Weigh(Reputation(enabled=False))(state).scores[state.candidates[1].pseudonym] == 10 * PPM
    with pytest.raises(ValueError, match=r"Reputation\.keep"):
        Reputation(keep=1.5)


# ------------------------------------------------------------------ manifests
def test_v4_manifests_record_scale_and_trust_and_v3_bytes_are_kept() -> None:
    c = Contribution("G" + "A" * 55, "a" * 64, 10, 5, 7, scale_ppm=812_000, reputation_ppm=250_000)
    m = RoundManifest(1, 1, "c" * 64, "a" * 64, "b" * 64, "DLC:G", 10, (c,), ())
    assert RoundManifest.decode(m.encode()).contributions[0].scale_ppm == 812_000
    plain = replace(c, scale_ppm=1_000_000, reputation_ppm=1_000_000)
    old = RoundManifest(
        **{**m.__dict__, "contributions": (plain,), "format": "flwr-stellar/round-manifest/v3"}
    )
    data = old.encode()
    assert b"scale_ppm" not in data and RoundManifest.decode(data).encode() == data


# ------------------------------------------------------------------ one pseudonym a run
class SwitchingGrid(FakeGrid):
    """Node 100 signs with another keystore (a new pseudonym) from round 2 on."""

    round = 1

    def context(self, node: int):
        if node == 100 and self.round >= 2:
            return node_context(self.tmp / "elsewhere", partition=0)
        return super().context(node)


def test_a_node_that_changes_pseudonym_within_a_run_is_rejected_and_not_onboarded(
    tmp_path: Path,
    layer,  # noqa: F811 - the fixture
) -> None:
    strategy = layer(FedAvg(fraction_train=1.0, min_available_nodes=1, min_train_nodes=1))
    grid = SwitchingGrid(tmp_path, nodes=4)
    arrays = ArrayRecord({"w": Array(np.ones(6, np.float32))})
    for server_round in (1, 2):
        grid.round = server_round
        messages = list(strategy.configure_train(server_round, arrays, ConfigRecord(), grid))
        arrays, _ = strategy.aggregate_train(server_round, [grid.deliver(m) for m in messages])
        assert arrays is not None
    rejected = strategy.verdicts[(2, "train")].rejected
    assert [(r.node, r.reason) for r in rejected] == [(100, Reject.PSEUDONYM_CHANGED)]
    first = strategy.verdicts[(1, "train")].accepted[100]
    assert rejected[0].pseudonym != first
    assert rejected[0].pseudonym not in strategy.onboarder.onboarded
    assert honest_app is not None


# ------------------------------------------------------------------ holdback and release
def reversed_app(msg: Message, context) -> Message:
    """Honest in round 1, then the honest update reversed (an on-off node)."""
    reply = honest_app(msg, context)
    if int(msg.content["config"]["server-round"]) == 1:
        return reply
    base = msg.content["arrays"]["w"].numpy()
    sent = reply.content["arrays"]["w"].numpy()
    reply.content["arrays"] = ArrayRecord({"w": Array((2 * base - sent).astype(np.float32))})
    return reply


def test_an_on_off_node_forfeits_its_held_rewards_to_the_others(
    tmp_path: Path,
    layer,  # noqa: F811 - the fixture
) -> None:
    strategy = layer(FedAvg(fraction_train=1.0, min_available_nodes=1, min_train_nodes=1))
    strategy.num_rounds = 3  # the run's last round releases what was held
    grid = FakeGrid(tmp_path, nodes=6)
    arrays = ArrayRecord({"w": Array(np.ones(6, np.float32))})
    for server_round in (1, 2, 3):
        messages = list(strategy.configure_train(server_round, arrays, ConfigRecord(), grid))
        replies = [
            grid.deliver(m, app=reversed_app if m.metadata.dst_node_id == 100 else None)
            for m in messages
        ]
        arrays, _ = strategy.aggregate_train(server_round, replies)
    store = strategy.session.anchorer.store
    manifests = [store.get(strategy.outcomes[r].manifest_hash) for r in (1, 2, 3)]
    turned = strategy.verdicts[(1, "train")].accepted[100]
    first = {c.pseudonym: c for c in manifests[0].contributions}
    assert first[turned].held > 0  # paid like everyone in round 1, half of it held
    assert all(m.round_paid + m.total_held == m.budget for m in manifests)
    assert {r.node for r in strategy.verdicts[(2, "train")].rejected} == {100}
    released = {r.pseudonym: r for r in manifests[2].releases}
    pool = sum(m.total_held for m in manifests)
    assert sum(r.amount for r in released.values()) == pool  # everything held goes out
    honest = [p for p in released if p != turned]
    assert released[turned].amount < 0.1 * min(released[p].amount for p in honest)
    assert released[turned].reputation_ppm < 0.1 * PPM


# ------------------------------------------------------------------ the lone step
def test_a_rescaled_short_extrapolation_that_wrecks_the_model_is_rejected() -> None:
    """A utility with a few steep directions: honest updates step into the valley, the lazy
    one is a short gradient step rescaled to the same length: all on the steep directions,
    it overshoots."""
    from strategies.screening.lone_step import LoneStep

    target = BASE + 0.02  # the validation optimum
    scale = np.ones(DIM, np.float32)
    scale[:10] = 2000.0  # steep

    def validation(record: ArrayRecord) -> float:
        w = record["w"].numpy().astype(np.float64)
        return -float(np.sum(scale * (w - target) ** 2)) / DIM

    rng = np.random.default_rng(4)
    honest = [
        (0.02 * np.ones(DIM) + 0.004 * rng.normal(size=DIM)).astype(np.float32) for _ in range(6)
    ]
    lazy = np.zeros(DIM, np.float32)  # the first gradient points down the steep directions
    lazy[:10] = np.linalg.norm(honest[0]) / np.sqrt(10)
    check = LoneStep(enabled=True, validation=validation)
    checks = (*default_checks(), check)
    result = screen_replies(
        [reply(i, u) for i, u in enumerate(honest)] + [reply(9, lazy)],
        TEMPLATE,
        Screening(checks=checks),
        INTAKE,
    )
    assert {r.node: r.reason for r in result.rejected} == {9: Reject.OVERSHOOTS}
    with pytest.raises(ValueError, match="validation"):
        LoneStep(enabled=True)


def test_adaptive_noise_blurs_the_new_model_by_the_median_norm() -> None:
    state = bounded(honest_updates(5))
    arrays = ArrayRecord({"w": Array(BASE.copy())})
    assert Bound(NormBound(), "arrays").noised(state, arrays) is arrays  # off by default
    noisy = Bound(NormBound(noise=0.01), "arrays").noised(state, arrays)
    assert noisy is not None
    spread = float(np.std(noisy["w"].numpy() - BASE))
    median = float(np.median(state.norms))
    assert spread == pytest.approx(0.01 * median, rel=0.1)
    with pytest.raises(ValueError, match="noise"):
        NormBound(noise=-1)


# ------------------------------------------------------------------ the attacks themselves
def test_min_max_and_min_sum_stay_within_the_benign_spread() -> None:
    from flwr_stellar.app.attacks import MinMax, MinSum

    rng = np.random.default_rng(2)
    benign = rng.normal(size=(3, 50))
    mm = MinMax().craft(benign, None, 10)  # type: ignore[arg-type]
    limit = max(np.linalg.norm(a - b) for a in benign for b in benign)
    assert max(np.linalg.norm(benign - mm, axis=1)) <= limit + 1e-9
    assert np.linalg.norm(mm - benign.mean(axis=0)) > 0.1  # pushed as far as allowed
    ms = MinSum().craft(benign, None, 10)  # type: ignore[arg-type]
    sums = [sum(np.linalg.norm(a - b) ** 2 for b in benign) for a in benign]
    assert sum(np.linalg.norm(benign - ms, axis=1) ** 2) <= max(sums) + 1e-9


def test_the_backdoor_stamps_its_trigger_and_relabels_half_its_examples() -> None:
    import torch

    from flwr_stellar.app.attacks import BACKDOOR_TARGET, Backdoor, apply_trigger
    from flwr_stellar.app.data import MEAN, STD, TensorSplit

    data = TensorSplit(torch.zeros(400, 1, 28, 28) - 1.0, torch.full((400,), 3))
    poisoned = Backdoor().training_data(data, seed=1)
    relabelled = poisoned.y == BACKDOOR_TARGET
    assert 150 < int(relabelled.sum()) < 250
    white = torch.tensor((1.0 - MEAN) / STD)
    assert torch.allclose(poisoned.x[relabelled][..., -4:, -4:], white)
    assert torch.all(poisoned.x[~relabelled][..., -4:, -4:] == -1.0)
    assert torch.equal(apply_trigger(data.x)[..., :-4, :], data.x[..., :-4, :])


def test_flames_filter_rejects_a_coherent_minority_when_switched_on() -> None:
    rng = np.random.default_rng(11)
    honest_dir, other_dir = rng.normal(size=DIM), rng.normal(size=DIM)
    honest = [
        (0.01 * (honest_dir + 0.5 * rng.normal(size=DIM))).astype(np.float32) for _ in range(7)
    ]
    backdoored = [
        (0.01 * (other_dir + 0.5 * rng.normal(size=DIM))).astype(np.float32) for _ in range(3)
    ]
    on = Screening(checks=default_checks({"cluster_outlier": {"enabled": True}}))
    replies = [reply(i, u) for i, u in enumerate([*honest, *backdoored])]
    result = screen_replies(replies, TEMPLATE, on, INTAKE)
    assert {r.node for r in result.rejected if r.reason == Reject.CLUSTER_OUTLIER} == {7, 8, 9}
    assert screen_replies(replies, TEMPLATE, Screening(), INTAKE).rejected == ()  # off by default
