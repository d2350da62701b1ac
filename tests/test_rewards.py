"""Reward rules: amounts parse exactly; budget splits are integer, bounded and deterministic."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flwr_stellar.payments.amounts import format_amount, parse_amount, split_budget
from strategies.scoring import SCORERS, Contribution, score


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


def test_scorers() -> None:
    contributions = [Contribution("A", 10), Contribution("B", 30)]
    assert SCORERS["flat"](contributions) == [1, 1]
    assert SCORERS["num-examples"](contributions) == [10, 30]
    assert score("num-examples", contributions) == {"A": 10, "B": 30}
    with pytest.raises(ValueError, match="unknown scorer"):
        score("shapley", contributions)


def test_negative_input_is_refused() -> None:
    with pytest.raises(ValueError):
        split_budget(-1, {"a": 1})
    with pytest.raises(ValueError):
        split_budget(1, {"a": -1})
