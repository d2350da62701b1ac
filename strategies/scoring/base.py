"""What a scorer is: one class that turns a round's accepted contributions into weights.

A scorer is a pipeline stage: it reads the surviving candidates of a :class:`RoundState`
(their claims, their rows of the delta matrix, the global model) and returns the state with
``scores`` (pseudonym -> non-negative integer weight), ``values`` (its raw estimates) and
``scoring`` (its name and parameters, as the manifest records them). The payments layer
splits the budget in stroops by the weights. Negative or zero contribution earns nothing,
and a round whose updates made the model no better pays nobody.

An app's own scorer subclasses :class:`Scorer`, sets ``name`` and implements
:meth:`Scorer.values`; it goes into ``LedgerConfig(scorer=MyScorer())``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from strategies.round import Candidate, RoundState

__all__ = ["WEIGHT_SCALE", "Scorer", "Valuation", "integer_weights"]

WEIGHT_SCALE = 10**9  # the best contribution of a value-scored round gets this weight


@dataclass(frozen=True)
class Valuation:
    """A scorer's raw values for one round, and what it spent getting them."""

    values: Sequence[float]
    evaluations: int = 0
    method: str = ""  # the estimator used, when it differs from the scorer's name


@dataclass(frozen=True)
class Scorer(ABC):
    """Prices a round's accepted contributions.

    Attributes
    ----------
    name : ClassVar[str]
        How manifests and configs name it.
    counts_only : ClassVar[bool]
        True when it needs nothing but the claims (an auditor can recompute it exactly).
    """

    name: ClassVar[str]
    counts_only: ClassVar[bool] = False

    @abstractmethod
    def values(self, state: RoundState) -> Valuation:
        """One value per candidate of ``state`` (in order): higher is worth more."""

    def params(self) -> dict[str, str | int]:
        """The scorer's parameters as the manifest records them (no floats)."""
        return {}

    def weights(self, values: Sequence[float]) -> list[int]:
        """Integer weights from values (default: the best gets ``WEIGHT_SCALE``)."""
        return integer_weights(values)

    def __call__(self, state: RoundState) -> RoundState:
        members = state.candidates
        if not members:
            return replace(state, scores={}, values={}, scoring={"name": self.name})
        valuation = self.values(state)
        if len(valuation.values) != len(members):
            raise RuntimeError(
                f"{type(self).__name__}.values gave {len(valuation.values)} values for "
                f"{len(members)} contributions"
            )
        weights = self.weights(valuation.values)
        scoring: dict[str, str | int] = {"name": self.name, **self.params()}
        if not self.counts_only:
            scoring["evaluations"] = valuation.evaluations
        if valuation.method and valuation.method != self.name:
            scoring["method"] = valuation.method
        return replace(
            state,
            scores=_by_pseudonym(members, weights),
            values=_by_pseudonym(members, [float(v) for v in valuation.values]),
            scoring=scoring,
        )


def _by_pseudonym(
    members: Sequence[Candidate], items: Sequence[float] | Sequence[int]
) -> dict[str, Any]:
    return {c.pseudonym: v for c, v in zip(members, items, strict=True)}


def integer_weights(values: Sequence[float]) -> list[int]:
    """Weights in [0, WEIGHT_SCALE]: the best positive value gets the whole scale, the others
    in proportion; non-positive and non-finite values get 0."""
    best = max((v for v in values if np.isfinite(v)), default=0.0)
    if best <= 0:
        return [0 for _ in values]
    return [int(WEIGHT_SCALE * v / best) if np.isfinite(v) and v > 0 else 0 for v in values]
