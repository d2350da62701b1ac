"""Value scorers that price coalitions of a round's updates on the server's validation data.

The round is a cooperative game whose coalition value is the validation gain of the model
rebuilt from that coalition's updates: the round's FedAvg aggregate with only the coalition's
updates in it, each at its weight in the whole round. Each scorer here is one estimator of
what each update adds (:mod:`strategies.scoring.shapley` implements them); evaluations reuse
one parameter buffer and each distinct coalition is evaluated once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from logging import WARNING
from typing import ClassVar

import numpy as np
from flwr.app import ArrayRecord
from flwr.common.logger import log

from strategies.round import RoundState, claim_shares
from strategies.scoring import shapley
from strategies.scoring.base import Scorer, Valuation
from strategies.vectors import flat_utility

__all__ = [
    "CoalitionScorer",
    "ExactShapley",
    "GtgShapley",
    "KernelShapley",
    "LeaveOneOut",
    "LossImprovement",
]


class RoundGame:
    """Coalition value = utility(the round's aggregate with only the coalition's updates in it)
    - utility(base), computed in one reused buffer.

    Each member keeps the weight it has in the whole round (its examples over all accepted
    examples, applied to its update as the norm bound left it), and non-members add nothing.
    So the full coalition is the round's FedAvg model, an update that adds nothing is worth
    exactly 0, and an update cannot earn by diluting the others (re-normalising over the
    coalition would pay a null or noise update for shrinking an overshooting step: measured,
    it paid noise senders half the budget).
    """

    def __init__(self, state: RoundState, utility: Callable[[np.ndarray], float]) -> None:
        assert state.model is not None and state.deltas is not None
        self.base, self.deltas = state.model.base, state.deltas
        self.rows = [c.row for c in state.candidates]
        scales = np.asarray([c.scale for c in state.candidates], np.float64)
        self.weights = (claim_shares(state.candidates) * scales).astype(np.float32)
        self.utility = utility
        self.buffer = np.empty_like(self.base)
        self.start = float(utility(self.base))

    def __call__(self, coalition: frozenset[int]) -> float:
        np.copyto(self.buffer, self.base)
        for member in sorted(coalition):
            self.buffer += self.weights[member] * self.deltas[self.rows[member]]
        return float(self.utility(self.buffer)) - self.start


@dataclass(frozen=True)
class CoalitionScorer(Scorer):
    """Base of the coalition-game scorers.

    Parameters
    ----------
    validation : callable
        ``ArrayRecord -> float``, higher for a better model, on data the server holds.
        Called many times a round with candidate models; reuse one model instance inside it.
    budget : int (default: 32)
        Coalition evaluations a sampled estimator may spend a round.
    seed : int (default: 0)
        Seeds the sampling (with the round number), so that scores are reproducible.
    """

    budgeted: ClassVar[bool] = True
    validation: Callable[[ArrayRecord], float] | None = field(default=None, compare=False)
    budget: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.validation is None:
            raise ValueError(
                f"scorer {self.name!r} prices updates on the server's data: pass "
                "validation=<ArrayRecord -> float> to LedgerStrategy.wrap"
            )
        if self.budget < 1:
            raise ValueError(f"{type(self).__name__}.budget must be >= 1, got {self.budget!r}")

    def params(self) -> dict[str, str | int]:
        return {"budget": self.budget, "seed": self.seed}

    def estimate(
        self, game: shapley.CachedGame, rng: np.random.Generator, state: RoundState
    ) -> tuple[np.ndarray, str]:
        """The estimator's values and its name."""
        raise NotImplementedError

    def values(self, state: RoundState) -> Valuation:
        assert self.validation is not None and state.model is not None
        utility = flat_utility(self.validation, state.model.record)
        n = len(state.candidates)
        game = shapley.CachedGame(
            n, RoundGame(state, utility), self.budget if self.budgeted else None
        )
        rng = np.random.default_rng([self.seed, state.server_round])
        # a round whose model is no better than the one it started from earns nobody anything
        if game(game.everyone) <= 0:
            return Valuation([0.0] * n, game.evaluations + 1, self.name)
        values, method = self.estimate(game, rng, state)
        return Valuation([float(v) for v in values], game.evaluations + 1, method)


@dataclass(frozen=True)
class LossImprovement(CoalitionScorer):
    """Each update alone: ``v({i})`` (n + 1 evaluations, not budgeted)."""

    name = "loss-improvement"
    budgeted = False

    def estimate(self, game, rng, state):  # type: ignore[no-untyped-def]
        return shapley.individual_gain(game), self.name


@dataclass(frozen=True)
class LeaveOneOut(CoalitionScorer):
    """``v(N) - v(N \\ {i})`` (n + 1 evaluations, not budgeted)."""

    name = "leave-one-out"
    budgeted = False

    def estimate(self, game, rng, state):  # type: ignore[no-untyped-def]
        return shapley.leave_one_out(game), self.name


@dataclass(frozen=True)
class KernelShapley(CoalitionScorer):
    """Sampled Shapley values by KernelSHAP within the budget."""

    name = "kernel-shapley"

    def estimate(self, game, rng, state):  # type: ignore[no-untyped-def]
        return shapley.kernel_shapley(game, rng=rng), self.name


@dataclass(frozen=True)
class GtgShapley(CoalitionScorer):
    """Sampled Shapley values by guided truncated permutations (GTG-Shapley)."""

    name = "gtg-shapley"

    def estimate(self, game, rng, state):  # type: ignore[no-untyped-def]
        return shapley.gtg_shapley(game, rng=rng), self.name


@dataclass(frozen=True)
class ExactShapley(CoalitionScorer):
    """All ``2^n`` coalitions; a round that needs more than the budget is estimated by
    kernel-shapley instead, and says so (manifest ``method``)."""

    name = "exact-shapley"

    def estimate(self, game, rng, state):  # type: ignore[no-untyped-def]
        n = game.n
        if 2**n - 1 > self.budget:
            log(
                WARNING,
                "round %d: exact-shapley needs %d evaluations for %d contributions, over the "
                "budget of %d: estimating with kernel-shapley instead",
                state.server_round,
                2**n - 1,
                n,
                self.budget,
            )
            return shapley.kernel_shapley(game, rng=rng), "kernel-shapley"
        return shapley.exact_shapley(game), self.name
