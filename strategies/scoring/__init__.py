"""Contribution scorers: how much of a round's budget each accepted contribution earns.

One scorer a class behind the :class:`Scorer` base (``strategies.scoring.base``); ``SCORERS``
registers the library's by name, the one place a new one is added:

- counting scorers need nothing but the replies: ``flat`` (equal shares) and ``num-examples``
  (the claimed, intake-bounded example counts);
- ``gradient-similarity`` (the default) needs no server data either: each update's cosine to
  the round's robust centre (CGSV, Xu et al. 2021);
- value scorers price what each update does to the model, on data the server holds:
  ``first-order`` (one gradient a round), ``loss-improvement``, ``leave-one-out``,
  ``kernel-shapley``, ``gtg-shapley``, ``exact-shapley`` (coalition games,
  ``strategies.scoring.coalition``).
"""

from __future__ import annotations

from collections.abc import Callable

from flwr.app import ArrayRecord

from strategies.scoring.base import WEIGHT_SCALE, Scorer, Valuation, integer_weights
from strategies.scoring.coalition import (
    CoalitionScorer,
    ExactShapley,
    GtgShapley,
    KernelShapley,
    LeaveOneOut,
    LossImprovement,
)
from strategies.scoring.counting import Flat, NumExamples
from strategies.scoring.first_order import FirstOrder
from strategies.scoring.similarity import GradientSimilarity

__all__ = [
    "COUNTING",
    "SCORERS",
    "WEIGHT_SCALE",
    "CoalitionScorer",
    "ExactShapley",
    "FirstOrder",
    "Flat",
    "GradientSimilarity",
    "GtgShapley",
    "KernelShapley",
    "LeaveOneOut",
    "LossImprovement",
    "NumExamples",
    "Scorer",
    "Valuation",
    "integer_weights",
    "make_scorer",
]

SCORERS: dict[str, type[Scorer]] = {
    cls.name: cls
    for cls in (
        Flat,
        NumExamples,
        GradientSimilarity,
        FirstOrder,
        LossImprovement,
        LeaveOneOut,
        KernelShapley,
        GtgShapley,
        ExactShapley,
    )
}
COUNTING: tuple[str, ...] = tuple(name for name, cls in SCORERS.items() if cls.counts_only)


def make_scorer(
    name: str,
    *,
    budget: int = 32,
    seed: int = 0,
    validation: Callable[[ArrayRecord], float] | None = None,
    validation_gradient: Callable[[ArrayRecord], ArrayRecord] | None = None,
) -> Scorer:
    """The registered scorer ``name``, given what it needs.

    Raises
    ------
    ValueError
        An unknown name, or a value scorer without the callback it prices with.
    """
    cls = SCORERS.get(name)
    if cls is None:
        raise ValueError(f"scorer must be one of {tuple(SCORERS)}, got {name!r}")
    if issubclass(cls, FirstOrder):
        return cls(gradient=validation_gradient)
    if issubclass(cls, CoalitionScorer):
        return cls(validation=validation, budget=budget, seed=seed)
    return cls()
