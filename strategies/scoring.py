"""Contribution scorers: how much of a round's budget each accepted contribution earns.

A scorer sees the round's accepted contributions and returns one non-negative integer weight
each; the payments layer splits the budget in stroops by those weights. Negative or zero
contribution earns nothing. Scorers are chosen by name (``SCORERS``) so a run's manifests can
name the one that priced them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["SCORERS", "Contribution", "Scorer", "score"]


@dataclass(frozen=True)
class Contribution:
    """An accepted contribution, as a scorer sees it.

    Parameters
    ----------
    pseudonym : str
        Who contributed.
    num_examples : int
        Examples the node says it trained on (already bounded by screening).
    """

    pseudonym: str
    num_examples: int


Scorer = Callable[[Sequence[Contribution]], list[int]]


def flat(contributions: Sequence[Contribution]) -> list[int]:
    """Every accepted contribution earns the same share."""
    return [1 for _ in contributions]


def num_examples(contributions: Sequence[Contribution]) -> list[int]:
    """Shares in proportion to the claimed (screened, bounded) number of examples."""
    return [max(0, c.num_examples) for c in contributions]


SCORERS: dict[str, Scorer] = {"flat": flat, "num-examples": num_examples}


def score(name: str, contributions: Sequence[Contribution]) -> dict[str, int]:
    """Weights by pseudonym from the scorer called ``name``."""
    try:
        scorer = SCORERS[name]
    except KeyError:
        raise ValueError(f"unknown scorer {name!r}; one of {tuple(SCORERS)}") from None
    weights = scorer(contributions)
    if len(weights) != len(contributions) or any(w < 0 for w in weights):
        raise ValueError(f"scorer {name!r} must return one weight >= 0 per contribution")
    return {c.pseudonym: w for c, w in zip(contributions, weights, strict=True)}
