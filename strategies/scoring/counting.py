"""Counting scorers: they need nothing but the replies, so an auditor recomputes them exactly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from strategies.round import RoundState
from strategies.scoring.base import Scorer, Valuation


@dataclass(frozen=True)
class Flat(Scorer):
    """Every accepted contribution earns the same share."""

    name = "flat"
    counts_only = True

    def values(self, state: RoundState) -> Valuation:
        return Valuation([1.0] * len(state.candidates))

    def weights(self, values: Sequence[float]) -> list[int]:
        return [int(v) for v in values]


@dataclass(frozen=True)
class NumExamples(Scorer):
    """Shares in proportion to the claimed (intake-bounded) number of examples."""

    name = "num-examples"
    counts_only = True

    def values(self, state: RoundState) -> Valuation:
        return Valuation([float(max(0, c.num_examples)) for c in state.candidates])

    def weights(self, values: Sequence[float]) -> list[int]:
        return [int(v) for v in values]
