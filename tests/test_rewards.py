"""Reward rules: amounts parse exactly; budget splits are integer, bounded and deterministic."""

import random
from dataclasses import dataclass

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, MessageType, MetricRecord
from hypothesis import given
from hypothesis import strategies as st

from flwr_stellar.ledger.amounts import (
    AmountError,
    format_amount,
    format_stroops,
    parse_amount,
    parse_stroops,
)
from flwr_stellar.payments.amounts import split_budget
from strategies.round import Candidate, ModelReference, RoundState
from strategies.scoring import (
    COUNTING,
    WEIGHT_SCALE,
    Flat,
    NumExamples,
    Scorer,
    Valuation,
    make_scorer,
)


@pytest.mark.parametrize(
    ("text", "stroops"),
    [("100", 1_000_000_000), ("0.0000001", 1), ("1.5", 15_000_000), (" 2 ", 20_000_000)],
)
def test_parse_amount(text: str, stroops: int) -> None:
    assert parse_amount(text) == stroops
    assert parse_amount(format_amount(stroops)) == stroops


@pytest.mark.parametrize("text", ["0", "-1", "0.00000001", "abc", "", "nan", "inf", "1e30"])
def test_parse_amount_rejects(text: str) -> None:
    assert parse_amount(text) is None


@given(stroops=st.integers(-(2**63), 2**63 - 1))
def test_codec_round_trips_every_int64(stroops: int) -> None:
    assert parse_stroops(format_amount(stroops)) == stroops
    assert parse_stroops(format_stroops(stroops)) == stroops
    assert len(format_stroops(stroops).split(".")[1]) == 7  # Horizon's shape


def test_codec_formats() -> None:
    assert format_amount(5_000_000) == "0.5"
    assert format_amount(0) == "0"
    assert format_amount(-5) == "-0.0000005"
    assert format_stroops(125_000_000) == "12.5000000"
    assert parse_stroops("0") == 0  # a Horizon balance may be zero


@pytest.mark.parametrize(
    "text", ["abc", "", "nan", "0.00000001", "922337203685.4775808", "1e9999999999"]
)
def test_parse_stroops_names_the_bad_amount(text: str) -> None:
    with pytest.raises(AmountError, match="amount"):
        parse_stroops(text)


def test_payments_amounts_re_exports_the_codec() -> None:
    from flwr_stellar.ledger import amounts as codec
    from flwr_stellar.payments import amounts as compat

    assert compat.format_amount is codec.format_amount
    assert compat.parse_amount is codec.parse_amount
    assert compat.STROOPS_PER_UNIT == codec.STROOPS_PER_UNIT == 10_000_000


weights = st.dictionaries(
    st.text(alphabet="ABCDEFG234567", min_size=1, max_size=6), st.integers(0, 10**6), max_size=30
)


@given(budget=st.integers(0, 10**15), weights=weights)
def test_split_is_integer_bounded_and_order_free(budget: int, weights: dict[str, int]) -> None:
    shares = split_budget(budget, weights)
    assert set(shares) == set(weights)
    assert all(isinstance(v, int) and v >= 0 for v in shares.values())
    total = sum(shares.values())
    assert total <= budget
    if any(weights.values()):
        assert total == budget  # largest remainder hands out every stroop
    else:
        assert total == 0
    shuffled = list(weights.items())
    random.Random(budget).shuffle(shuffled)
    assert split_budget(budget, dict(shuffled)) == shares
    for key, w in weights.items():  # nobody gets more than their fair share rounded up
        if sum(weights.values()):
            assert abs(shares[key] - budget * w / sum(weights.values())) < 1 + 1e-9 * budget


def test_zero_weight_gets_nothing() -> None:
    assert split_budget(10, {"a": 1, "b": 0, "c": 1}) == {"a": 5, "b": 0, "c": 5}
    assert split_budget(11, {"a": 1, "b": 1}) == {"a": 6, "b": 5}  # tie: smaller key


def round_of(deltas: list[list[float]], examples: list[int]) -> RoundState:
    """A scored round of a 2-parameter model starting at 0."""
    model = ModelReference(ArrayRecord({"p": Array(np.zeros(2, np.float32))}))
    matrix = np.array(deltas, np.float32).reshape(len(deltas), 2)
    candidates = tuple(
        Candidate(i, None, MetricRecord(), n, row=i, pseudonym=f"P{i}")  # type: ignore[arg-type]
        for i, n in enumerate(examples)
    )
    return RoundState(
        1,
        MessageType.TRAIN,
        model,
        candidates=candidates,
        deltas=matrix,
        norms=np.linalg.norm(matrix, axis=1),
    )


OPTIMUM = np.array([1.0, 1.0], np.float32)


def validation(arrays: ArrayRecord) -> float:
    """Minus the squared distance to the optimum (1, 1)."""
    return -float(np.sum((arrays["p"].numpy() - OPTIMUM) ** 2))


def gradient(arrays: ArrayRecord) -> ArrayRecord:
    return ArrayRecord({"p": Array((2 * (OPTIMUM - arrays["p"].numpy())).astype(np.float32))})


def scorer(name: str, budget: int = 64):  # type: ignore[no-untyped-def]
    return make_scorer(name, budget=budget, validation=validation, validation_gradient=gradient)


def test_counting_scorers() -> None:
    state = round_of([[1, 1], [1, 1]], [10, 30])
    assert Flat()(state).scores == {"P0": 1, "P1": 1}
    assert NumExamples()(state).scores == {"P0": 10, "P1": 30}
    assert NumExamples()(state).scoring == {"name": "num-examples"}
    assert set(COUNTING) == {"flat", "num-examples"}
    with pytest.raises(ValueError, match="must be one of"):
        make_scorer("shapley")
    with pytest.raises(ValueError, match="validation"):
        make_scorer("kernel-shapley")
    with pytest.raises(ValueError, match="validation_gradient"):
        make_scorer("first-order")


@pytest.mark.parametrize(
    "name",
    [
        "loss-improvement",
        "leave-one-out",
        "exact-shapley",
        "kernel-shapley",
        "gtg-shapley",
        "first-order",
    ],
)
def test_value_scorers_on_known_cases(name: str) -> None:
    # identical helpful updates: equal shares
    result = scorer(name)(round_of([[1, 1]] * 3, [10, 10, 10]))
    assert len(set(result.scores.values())) == 1 and result.scores["P0"] > 0
    # a harmful update (away from the optimum) earns nothing; the helpful ones split
    result = scorer(name)(round_of([[1, 1], [0.9, 1.1], [-1, -1]], [10, 10, 10]))
    assert result.scores["P2"] == 0 and result.scores["P0"] > 0 and result.scores["P1"] > 0
    evaluations = result.scoring["evaluations"]
    assert isinstance(evaluations, int) and evaluations >= (1 if name == "first-order" else 2)
    assert result.scoring["name"] == name
    # a round that made the model worse pays nobody
    assert set(scorer(name)(round_of([[-1, -1], [-2, 0]], [10, 10])).scores.values()) == {0}


def test_exact_shapley_over_its_budget_is_estimated_and_says_so() -> None:
    result = scorer("exact-shapley", budget=20)(round_of([[1, 1]] * 6, [10] * 6))
    assert result.scoring["method"] == "kernel-shapley"
    assert int(result.scoring["evaluations"]) <= 21


@given(
    st.lists(st.tuples(st.floats(-2, 2), st.floats(-2, 2)), min_size=1, max_size=6),
    st.integers(1, 10**12),
)
def test_value_scored_payouts_never_exceed_the_budget(deltas, budget: int) -> None:
    weights = scorer("kernel-shapley", budget=16)(
        round_of([list(d) for d in deltas], [10] * len(deltas))
    ).scores
    assert all(w >= 0 for w in weights.values())
    assert sum(split_budget(budget, dict(weights)).values()) <= budget


def test_an_apps_own_scorer_prices_the_round() -> None:
    """A Scorer defined here, outside the library: shares by the square root of the claim."""

    @dataclass(frozen=True)
    class SquareRootOfClaim(Scorer):
        name = "sqrt-claim"
        counts_only = True

        def values(self, state: RoundState) -> Valuation:
            return Valuation([float(np.sqrt(c.num_examples)) for c in state.candidates])

    result = SquareRootOfClaim()(round_of([[1, 1], [1, 1]], [100, 400]))
    assert result.scores["P1"] == 2 * result.scores["P0"] == WEIGHT_SCALE
    assert result.scoring == {"name": "sqrt-claim"}


def test_negative_input_is_refused() -> None:
    with pytest.raises(ValueError):
        split_budget(-1, {"a": 1})
    with pytest.raises(ValueError):
        split_budget(1, {"a": -1})
