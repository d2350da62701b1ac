"""Every screening check passes honest updates and rejects its target with its reason."""

from dataclasses import replace

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from helpers import instruction

from flwr_stellar.reasons import Reason as Reject
from strategies.intake import IntakeSettings
from strategies.screening import Screening, default_checks, screen_replies
from strategies.vectors import unflatten

INTAKE = IntakeSettings(max_num_examples=1000)


def config(watch_rounds: int = 3, enabled: bool = True, **options: dict) -> Screening:
    """The screening under test: the defaults, centre cosine 0, and per-check overrides."""
    merged = {"centre_cosine": {"min_cosine": 0.0}} | options
    return Screening(
        enabled=enabled, checks=default_checks(merged), min_peers=3, watch_rounds=watch_rounds
    )


CFG = config()


def screen(replies, global_arrays, screening, **kwargs):
    return screen_replies(replies, global_arrays, screening, INTAKE, **kwargs)


RNG = np.random.default_rng(7)
GLOBAL = {"conv.w": RNG.normal(size=(4, 3)).astype(np.float32), "fc.b": np.zeros(5, np.float32)}
DIRECTION = {k: RNG.normal(size=v.shape).astype(np.float32) for k, v in GLOBAL.items()}


def global_record() -> ArrayRecord:
    return ArrayRecord({k: Array(v.copy()) for k, v in GLOBAL.items()})


def arrays_from(update_scale: float = 1.0, seed: int = 0, **override: np.ndarray) -> dict:
    rng = np.random.default_rng(seed)
    out = {
        k: (v + 0.1 * update_scale * (DIRECTION[k] + 0.8 * rng.normal(size=v.shape))).astype(
            np.float32
        )
        for k, v in GLOBAL.items()
    }
    out.update(override)
    return out


def candidate(node: int, arrays: dict | None = None, n: int | float = 100, **records) -> Message:
    arrays = arrays_from(seed=node) if arrays is None else arrays
    content = RecordDict(
        {
            "arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
            "metrics": MetricRecord({"num-examples": n, "train_loss": 0.5}),
            **records,
        }
    )
    reply = instruction(content)
    reply.metadata.__dict__["_src_node_id"] = node
    return reply


def honest(k: int = 4) -> list[Message]:
    return [candidate(i) for i in range(k)]


def reasons(result) -> dict[int, str]:
    return {r.node: r.reason for r in result.rejected}


def test_honest_updates_all_pass() -> None:
    result = screen(honest(5), global_record(), CFG)
    assert [c.node for c in result.candidates] == [0, 1, 2, 3, 4]
    assert result.rejected == ()
    assert all(c.num_examples == 100 and len(c.update_hash) == 64 for c in result.candidates)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (
            lambda: candidate(9, arrays_from(seed=9, **{"fc.b": np.full(5, np.nan, np.float32)})),
            Reject.NON_FINITE,
        ),
        (
            lambda: candidate(9, arrays_from(seed=9, **{"fc.b": np.full(5, np.inf, np.float32)})),
            Reject.NON_FINITE,
        ),
        (
            lambda: candidate(9, arrays_from(seed=9, **{"fc.b": np.zeros(6, np.float32)})),
            Reject.STRUCTURE,
        ),
        (
            lambda: candidate(9, arrays_from(seed=9, **{"fc.b": np.zeros(5, np.float64)})),
            Reject.STRUCTURE,
        ),
        (
            lambda: candidate(9, {"conv.w": GLOBAL["conv.w"], "other": GLOBAL["fc.b"]}),
            Reject.STRUCTURE,
        ),
        (lambda: candidate(9, arrays_from(update_scale=10, seed=9)), Reject.NORM_OUTLIER),
        (
            lambda: candidate(9, {k: 2 * GLOBAL[k] - v for k, v in arrays_from(seed=9).items()}),
            Reject.COSINE,
        ),
        (lambda: candidate(9, {k: v.copy() for k, v in GLOBAL.items()}), Reject.FREE_RIDER),
        (lambda: candidate(9, arrays_from(update_scale=1e-5, seed=9)), Reject.FREE_RIDER),
        (lambda: candidate(9, n=0), Reject.NUM_EXAMPLES),
        (lambda: candidate(9, n=10**6), Reject.NUM_EXAMPLES),
        (lambda: candidate(9, n=2.5), Reject.NUM_EXAMPLES),
        (lambda: candidate(9, extra=ConfigRecord({"x": 1})), Reject.MALFORMED),
        (lambda: candidate(9, more=MetricRecord({"num-examples": 1})), Reject.MALFORMED),
    ],
    ids=[
        "nan",
        "inf",
        "shape",
        "dtype",
        "names",
        "norm-outlier",
        "sign-flip",
        "copy-global",
        "tiny-update",
        "zero-examples",
        "too-many-examples",
        "fractional-examples",
        "extra-config-record",
        "two-metric-records",
    ],
)
def test_each_check_rejects_its_target(bad, reason: Reject) -> None:
    result = screen([*honest(4), bad()], global_record(), CFG)
    assert reasons(result) == {9: reason}
    assert sorted(c.node for c in result.candidates) == [0, 1, 2, 3]


def test_absolute_norm_bound() -> None:
    norms = [
        float(
            np.linalg.norm(
                np.concatenate([(v - GLOBAL[k]).ravel() for k, v in arrays_from(seed=i).items()])
            )
        )
        for i in range(4)
    ]
    cfg = config(max_norm={"max_norm": sorted(norms)[1] * 1.0001})
    result = screen(honest(4), global_record(), cfg)
    assert set(reasons(result).values()) == {Reject.NORM}
    assert len(result.candidates) == 2


def test_identical_updates_are_all_rejected_as_duplicates() -> None:
    copy = arrays_from(seed=1)
    cands = [*honest(4), candidate(8, dict(copy)), candidate(9, dict(copy))]
    result = screen(cands, global_record(), CFG)
    assert reasons(result) == {
        1: Reject.DUPLICATE_UPDATE,
        8: Reject.DUPLICATE_UPDATE,
        9: Reject.DUPLICATE_UPDATE,
    }


def test_deviant_metric_keys_are_rejected_where_the_app_declares_its_keys() -> None:
    odd = candidate(9)
    odd.content["metrics"] = MetricRecord({"num-examples": 100, "surprise": 1.0})
    declared = replace(INTAKE, train_metrics=("num-examples", "train_loss"))
    result = screen_replies([*honest(4), odd], global_record(), CFG, declared)
    assert reasons(result) == {9: Reject.MALFORMED_METRICS}
    undeclared = screen([*honest(4), odd], global_record(), CFG)  # shared keys go on
    assert reasons(undeclared) == {}


def test_relative_checks_need_enough_peers() -> None:
    pair = [candidate(0), candidate(1, arrays_from(update_scale=10, seed=1))]
    assert len(screen(pair, global_record(), CFG).candidates) == 2


def test_disabled_screening_passes_everything_through() -> None:
    cands = [*honest(3), candidate(9, arrays_from(update_scale=10, seed=9))]
    result = screen(cands, global_record(), config(enabled=False))
    assert len(result.candidates) == 4 and all(c.update_hash for c in result.candidates)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 10, 24, 25])
def test_coordinate_median_equals_numpy(n: int) -> None:
    from strategies.screening import coordinate_median

    rows = np.random.default_rng(n).normal(size=(n, 257)).astype(np.float32)
    rows[0, :5] = rows[-1, :5]  # ties
    np.testing.assert_allclose(coordinate_median(rows), np.median(rows, axis=0), rtol=1e-6)


@pytest.mark.parametrize("n", [3, 30])
def test_coordinate_median_of_chosen_rows_across_column_blocks(n: int) -> None:
    from strategies.screening import MEDIAN_BLOCK, coordinate_median

    matrix = np.random.default_rng(n).normal(size=(n + 2, MEDIAN_BLOCK + 77)).astype(np.float32)
    chosen = list(range(1, n + 1))  # not the first, not the last
    np.testing.assert_allclose(
        coordinate_median(matrix, chosen), np.median(matrix[chosen], axis=0), rtol=1e-6
    )


def test_an_error_reply_is_rejected_not_raised() -> None:
    from flwr.app import Error, Message

    error = Message(Error(code=1, reason="boom"), reply_to=instruction(RecordDict()))
    error.metadata.__dict__["_src_node_id"] = 9
    result = screen([*honest(4), error], global_record(), CFG)
    assert reasons(result) == {9: Reject.ERROR_REPLY}


def test_a_watched_node_gets_no_benefit_of_the_doubt() -> None:
    """History: a node rejected (or worth nothing) in a recent round must agree with the
    round's robust centre; the same update from an unwatched node passes."""
    loose = config(watch_rounds=2, centre_cosine={"min_cosine": -0.5, "watched_min_cosine": 0.0})
    d = np.concatenate([DIRECTION[k].ravel() for k in GLOBAL])
    r = np.random.default_rng(3).normal(size=d.size)
    r -= (r @ d) / (d @ d) * d  # orthogonal to the honest direction
    step = 0.1 * np.linalg.norm(d) * (-0.3 * d / np.linalg.norm(d) + 0.95 * r / np.linalg.norm(r))
    sideways, offset = {}, 0  # cosine about -0.3 to the honest centre
    for k, v in GLOBAL.items():
        sideways[k] = (v + step[offset : offset + v.size].reshape(v.shape)).astype(np.float32)
        offset += v.size
    for watched, expected in ((frozenset(), None), (frozenset({9}), Reject.COSINE)):
        result = screen(
            [*honest(4), candidate(9, sideways)], global_record(), loose, watched=watched
        )
        assert reasons(result).get(9) == expected


def test_rejections_and_worthless_rounds_start_a_watch() -> None:
    from flwr.serverapp.strategy import FedAvg

    from strategies.screening import ScreeningHistory, ScreeningStrategy

    history = ScreeningHistory(watch_rounds=2)
    history.watch(5, server_round=3)  # e.g. the LedgerStrategy found it worth nothing
    assert history.watched(4) == history.watched(5) == frozenset({5})
    assert history.watched(6) == frozenset()
    none = ScreeningHistory(watch_rounds=0)
    none.watch(5, server_round=3)
    assert none.watched(4) == frozenset()
    strategy = ScreeningStrategy(FedAvg(), config(watch_rounds=2), INTAKE)
    assert strategy.history.watch_rounds == 2


def test_a_claim_the_update_cannot_back_is_rejected() -> None:
    """Lazy free rider: an update a fifth as long as its peers' while claiming as many
    examples; the same update with a claim a tenth of theirs is an honest small node."""
    short = arrays_from(update_scale=0.2, seed=9)
    result = screen([*honest(4), candidate(9, short, n=100)], global_record(), CFG)
    assert reasons(result) == {9: Reject.CLAIM_EXCEEDS_WORK}
    assert "100 examples predict" in result.rejected[0].detail
    for ok in (
        screen([*honest(4), candidate(9, short, n=10)], global_record(), CFG),
        screen(
            [*honest(4), candidate(9, short, n=100)],
            global_record(),
            config(claim_exceeds_work={"min_work_ratio": 0.0}),
        ),
    ):
        assert reasons(ok) == {}


def global_step_replay(step_scale: float) -> tuple[np.ndarray, dict]:
    """(the previous global model, an update that is the last global step x step_scale)."""
    rng = np.random.default_rng(11)  # last round's step: like the honest direction, loosely
    step = {k: 0.05 * (0.5 * DIRECTION[k] + rng.normal(size=v.shape)) for k, v in GLOBAL.items()}
    previous = np.concatenate([(GLOBAL[k] - step[k]).ravel() for k in GLOBAL])
    return previous.astype(np.float32), {
        k: (v + step_scale * step[k]).astype(np.float32) for k, v in GLOBAL.items()
    }


def test_the_last_global_step_sent_back_is_rejected() -> None:
    """Delta-weights free rider (Fraboni et al. 2021): its 'update' is the global step the
    server made last round; recognised at any scale, only when that step is known."""
    previous, replayed = global_step_replay(3.0)  # as long as an honest update
    for scale in (3.0, 6.0):
        _, replayed = global_step_replay(scale)
        result = screen(
            [*honest(4), candidate(9, replayed)], global_record(), CFG, previous_base=previous
        )
        assert reasons(result) == {9: Reject.REPLAYED_GLOBAL_STEP}
    for ok in (
        screen([*honest(4), candidate(9, replayed)], global_record(), CFG),  # round 1
        screen(
            [*honest(4), candidate(9, replayed)],
            global_record(),
            config(replayed_global_step={"max_step_cosine": 1.0}),
            previous_base=previous,
        ),
        screen(honest(5), global_record(), CFG, previous_base=previous),
    ):
        assert reasons(ok) == {}


def test_the_strategy_remembers_the_last_global_model() -> None:
    from flwr.serverapp.strategy import FedAvg

    from strategies.round import ModelReference
    from strategies.screening import ScreeningStrategy

    strategy = ScreeningStrategy(FedAvg(), CFG, INTAKE)
    previous, replayed = global_step_replay(3.0)
    start = unflatten(global_record(), previous)
    for server_round, arrays, cands in (
        (1, start, honest(4)),
        (2, global_record(), [*honest(4), candidate(9, replayed)]),
    ):
        strategy._models[(server_round, "train")] = ModelReference(arrays)  # configure_train's
        strategy.aggregate_train(server_round, cands)
    rejected = strategy.verdicts[(2, "train")].rejected
    assert [(r.node, r.reason) for r in rejected] == [(9, Reject.REPLAYED_GLOBAL_STEP)]


def test_where_honest_updates_follow_the_last_step_only_the_replay_is_rejected() -> None:
    """Smooth problems: every honest update is close to the last global step (cosine ~0.98);
    the bound tightens with the round's median, so they pass and the exact replay does not."""
    previous, replayed = global_step_replay(1.0)
    step = {k: replayed[k] - GLOBAL[k] for k in GLOBAL}
    close = []
    for i in range(4):
        rng = np.random.default_rng(100 + i)
        arrays = {
            k: (GLOBAL[k] + 1.1 * v + 0.2 * np.abs(v).mean() * rng.normal(size=v.shape))
            for k, v in step.items()
        }
        close.append(candidate(i, {k: v.astype(np.float32) for k, v in arrays.items()}))
    result = screen([*close, candidate(9, replayed)], global_record(), CFG, previous_base=previous)
    assert reasons(result) == {9: Reject.REPLAYED_GLOBAL_STEP}
    assert "round median 0.9" in result.rejected[0].detail


def test_an_update_against_the_last_global_step_is_rejected_unless_everyone_turns() -> None:
    """Sign flipper: honest updates go on the way the last step went (cosine > 0), a flipped
    one goes back. After a bad step every honest update turns back: then nobody is rejected."""
    previous, _ = global_step_replay(1.0)
    flipped = {k: 2 * GLOBAL[k] - v for k, v in arrays_from(seed=9).items()}
    loose = config(centre_cosine={"min_cosine": -1.0})  # the robust centre would catch it too
    result = screen(
        [*honest(5), candidate(9, flipped)], global_record(), loose, previous_base=previous
    )
    assert reasons(result) == {9: Reject.REVERSES_GLOBAL_STEP}
    assert "round median" in result.rejected[0].detail
    bad_step = 2 * np.concatenate([GLOBAL[k].ravel() for k in GLOBAL]) - previous  # reversed
    for ok in (
        screen(honest(6), global_record(), loose, previous_base=bad_step.astype(np.float32)),
        screen(
            [*honest(5), candidate(9, flipped)],
            global_record(),
            config(
                centre_cosine={"min_cosine": -1.0}, reverses_global_step={"step_cosine_margin": 0}
            ),
            previous_base=previous,
        ),
    ):
        assert reasons(ok) == {}
    few = screen(
        [*honest(4), candidate(9, flipped)], global_record(), loose, previous_base=previous
    )
    assert reasons(few) == {}  # 5 replies < 2 x min_peers: too few to judge a median by


def test_a_large_round_takes_its_centre_over_a_random_sample_and_still_holds() -> None:
    """Over CENTRE_SAMPLE members the centre is the median of a random draw: with 30 %
    sign-flipped updates among 300 it still points the honest way."""
    from strategies.screening.base import CENTRE_SAMPLE

    honest_replies = [candidate(i) for i in range(210)]
    flipped = [
        candidate(1000 + i, {k: 2 * GLOBAL[k] - v for k, v in arrays_from(seed=i).items()})
        for i in range(90)
    ]
    assert len(honest_replies) + len(flipped) > CENTRE_SAMPLE
    result = screen([*honest_replies, *flipped], global_record(), CFG)
    assert set(reasons(result)) == {1000 + i for i in range(90)}
    assert set(reasons(result).values()) == {Reject.COSINE}


def test_a_copy_with_a_re_encoded_header_is_still_a_copy() -> None:
    """The same values under a differently written (but valid) .npy header: still a copy."""
    import io

    copy = arrays_from(seed=7)
    first = candidate(8, dict(copy))
    second = candidate(9, dict(copy))
    buffer = io.BytesIO()
    np.save(buffer, np.asfortranarray(copy["conv.w"]))  # fortran order: other bytes, same values
    fortran = Array(dtype="float32", shape=(4, 3), stype="numpy.ndarray", data=buffer.getvalue())
    second.content["arrays"] = ArrayRecord({"conv.w": fortran, "fc.b": Array(copy["fc.b"])})
    result = screen([*honest(4), first, second], global_record(), CFG)
    assert reasons(result) == {8: Reject.DUPLICATE_UPDATE, 9: Reject.DUPLICATE_UPDATE}


def test_a_non_finite_validation_gain_is_rejected_and_does_not_blind_the_check() -> None:
    """An update that makes the validation utility NaN is rejected, and the floor, taken over
    the finite gains, still rejects a clearly harmful one."""
    from strategies.round import ModelReference

    base = np.concatenate([GLOBAL[k].ravel() for k in GLOBAL])
    harmful = {k: 2 * GLOBAL[k] - v for k, v in arrays_from(update_scale=5, seed=8).items()}
    poison = arrays_from(seed=9, **{"fc.b": np.full(5, 1e6, np.float32)})
    good = np.concatenate([DIRECTION[k].ravel() for k in GLOBAL])

    def validation(arrays: ArrayRecord) -> float:
        flat = np.concatenate([arrays[k].numpy().ravel() for k in GLOBAL])
        if np.abs(flat).max() > 1e3:
            return float("nan")  # e.g. 0 * log(0) in an app's cross-entropy
        return float(np.dot(flat - base, good))

    checks = default_checks(
        {
            "centre_cosine": {"min_cosine": -1.0},
            "norm_outlier": {"factor": 0.0},
            "hurts_validation": {"enabled": True},
        },
        validation,
    )
    screening = Screening(checks=checks, min_peers=3)
    result = screen(
        [*honest(4), candidate(8, harmful), candidate(9, poison)], global_record(), screening
    )
    assert reasons(result) == {8: Reject.HURTS_VALIDATION, 9: Reject.HURTS_VALIDATION}
    assert ModelReference(global_record()).size == base.size
