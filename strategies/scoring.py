"""Contribution scorers: how much of a round's budget each accepted contribution earns.

A scorer turns a round's accepted contributions into one non-negative integer weight each; the
payments layer splits the budget in stroops by those weights. Negative or zero contribution
earns nothing, and a round whose updates made the model no better pays nobody.

Two kinds, chosen by name (``SCORERS``), named with their parameters in every manifest:

- counting scorers need nothing but the replies: ``flat`` (equal shares) and ``num-examples``
  (the claimed, screened and bounded example counts);
- value scorers price what each update does to the model, on data the server holds: the round
  is a cooperative game whose coalition value is the validation gain of the model rebuilt from
  that coalition's updates (the round's FedAvg aggregate with only the coalition's updates in
  it, each at its weight in the whole round). ``loss-improvement`` (each update alone),
  ``leave-one-out``,
  ``kernel-shapley`` / ``gtg-shapley`` (sampled Shapley values within a per-round evaluation
  budget), ``exact-shapley`` (all coalitions; small rounds only) and ``first-order``: the
  Shapley value of the game's first-order (Taylor) approximation, which is additive, so
  each update's value is its weighted step along the utility's gradient at the round's start
  (``w_i g . delta_i``): one gradient a round instead of dozens of evaluations, at the price
  of ignoring interactions between updates. The app supplies the
  validation through a callback; evaluations reuse one parameter buffer, and each distinct
  coalition is evaluated once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from logging import WARNING

import numpy as np
from flwr.common.logger import log

from strategies import shapley

__all__ = [
    "COUNTING",
    "SCORERS",
    "Contribution",
    "RoundUpdates",
    "Scores",
    "ScoringSettings",
    "score",
]

WEIGHT_SCALE = 10**9  # the best contribution of a value-scored round gets this weight


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


@dataclass(frozen=True)
class RoundUpdates:
    """What value scorers need: the round's model and the accepted updates, no copies.

    Parameters
    ----------
    base : numpy.ndarray
        The model the round started from, flat float32.
    deltas : numpy.ndarray
        ``(contributions, parameters)`` float32: row ``rows[i]`` is contribution ``i``'s
        update (screening's matrix, shared, never copied).
    rows : sequence of int
        The row of each contribution in ``deltas``.
    utility : callable
        Flat parameters -> a number that is higher for a better model (e.g. validation
        accuracy, or minus the validation loss).
    utility_gradient : callable, optional
        Flat parameters -> the gradient of ``utility`` there (flat), for ``first-order``.
    """

    base: np.ndarray
    deltas: np.ndarray
    rows: Sequence[int]
    utility: Callable[[np.ndarray], float]
    utility_gradient: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True)
class ScoringSettings:
    """Which scorer prices a round, and how much evaluation it may spend.

    Parameters
    ----------
    name : str
        One of ``SCORERS``.
    budget : int
        Model evaluations (coalitions) a sampled Shapley scorer may spend per round;
        ``exact-shapley`` falls back to ``kernel-shapley`` on rounds that need more.
        ``loss-improvement`` and ``leave-one-out`` always spend n (+1).
    seed : int
        Seeds the sampling (with the round number), so that scores are reproducible.
    """

    name: str = "num-examples"
    budget: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.name not in SCORERS:
            raise ValueError(
                f"ScoringSettings.name must be one of {tuple(SCORERS)}, got {self.name!r}"
            )
        if self.budget < 1:
            raise ValueError(f"ScoringSettings.budget must be >= 1, got {self.budget!r}")

    @property
    def needs_model(self) -> bool:
        """True for value scorers: they need the updates and a validation callback."""
        return self.name not in COUNTING


@dataclass(frozen=True)
class Scores:
    """A round's scores: integer weights, raw values and what the scorer did."""

    weights: dict[str, int]
    values: dict[str, float] = field(default_factory=dict)
    evaluations: int = 0
    method: str = ""  # the estimator used, when it differs from the scorer's name

    def manifest_params(self, settings: ScoringSettings) -> dict[str, str | int]:
        """The scorer's name and parameters as a manifest records them (no floats)."""
        params: dict[str, str | int] = {"name": settings.name}
        if settings.needs_model:
            params |= {"budget": settings.budget, "seed": settings.seed}
            params["evaluations"] = self.evaluations
        if self.method and self.method != settings.name:
            params["method"] = self.method
        return params


def flat(contributions: Sequence[Contribution]) -> list[float]:
    """Every accepted contribution earns the same share."""
    return [1.0 for _ in contributions]


def num_examples(contributions: Sequence[Contribution]) -> list[float]:
    """Shares in proportion to the claimed (screened, bounded) number of examples."""
    return [float(max(0, c.num_examples)) for c in contributions]


def _first_order(contributions: Sequence[Contribution], updates: RoundUpdates) -> Scores:
    if updates.utility_gradient is None:
        raise ValueError(
            "scorer 'first-order' needs the gradient of the validation utility: pass "
            "validation_gradient=<ArrayRecord -> ArrayRecord> to the strategy"
        )
    gradient = updates.utility_gradient(updates.base).astype(np.float32, copy=False)
    counts = np.asarray([max(1, c.num_examples) for c in contributions], np.float64)
    shares = counts / counts.sum()
    values = [
        float(share * np.dot(gradient, updates.deltas[row]))
        for share, row in zip(shares, updates.rows, strict=True)
    ]
    if sum(values) <= 0:  # to first order, the round's aggregate is no better
        values = [0.0] * len(values)
    return Scores(
        weights={c.pseudonym: w for c, w in zip(contributions, _weights(values), strict=True)},
        values={c.pseudonym: v for c, v in zip(contributions, values, strict=True)},
        evaluations=1,
    )


COUNTING: dict[str, Callable[[Sequence[Contribution]], list[float]]] = {
    "flat": flat,
    "num-examples": num_examples,
}
_GAME: dict[str, Callable[[shapley.CachedGame, np.random.Generator], np.ndarray]] = {
    "loss-improvement": lambda game, rng: shapley.individual_gain(game),
    "leave-one-out": lambda game, rng: shapley.leave_one_out(game),
    "kernel-shapley": lambda game, rng: shapley.kernel_shapley(game, rng=rng),
    "gtg-shapley": lambda game, rng: shapley.gtg_shapley(game, rng=rng),
    "exact-shapley": lambda game, rng: shapley.exact_shapley(game),
}
SCORERS: tuple[str, ...] = (*COUNTING, *_GAME, "first-order")


class _RoundGame:
    """Coalition value = utility(the round's aggregate with only the coalition's updates in it)
    - utility(base), computed in one reused buffer.

    Each member keeps the weight it has in the whole round (its examples over all accepted
    examples), and non-members add nothing. So the full coalition is the round's FedAvg model,
    an update that adds nothing is worth exactly 0, and an update cannot earn by diluting the
    others (re-normalising over the coalition would pay a null or noise update for shrinking
    an overshooting step: measured, it paid noise senders half the budget).
    """

    def __init__(self, updates: RoundUpdates, examples: Sequence[int]) -> None:
        self.updates = updates
        counts = np.asarray([max(1, n) for n in examples], np.float64)
        self.weights = (counts / counts.sum()).astype(np.float32)
        self.buffer = np.empty_like(updates.base)
        self.start = float(updates.utility(updates.base))

    def __call__(self, coalition: frozenset[int]) -> float:
        np.copyto(self.buffer, self.updates.base)
        for member in sorted(coalition):
            self.buffer += self.weights[member] * self.updates.deltas[self.updates.rows[member]]
        return float(self.updates.utility(self.buffer)) - self.start


def _weights(values: Sequence[float]) -> list[int]:
    best = max((v for v in values if np.isfinite(v)), default=0.0)
    if best <= 0:
        return [0 for _ in values]
    return [int(WEIGHT_SCALE * v / best) if np.isfinite(v) and v > 0 else 0 for v in values]


def score(
    settings: ScoringSettings | str,
    contributions: Sequence[Contribution],
    updates: RoundUpdates | None = None,
    server_round: int = 0,
) -> Scores:
    """Weights by pseudonym from the scorer ``settings`` names.

    Parameters
    ----------
    settings : ScoringSettings or str
        The scorer (a bare name uses the default budget and seed).
    contributions : sequence of Contribution
        The round's accepted contributions.
    updates : RoundUpdates, optional
        Required by value scorers.
    server_round : int
        Mixed into the sampling seed.

    Raises
    ------
    ValueError
        A value scorer without updates. (``exact-shapley`` on a round that needs more
        evaluations than the budget is estimated by ``kernel-shapley`` instead, and says so.)
    """
    if isinstance(settings, str):
        settings = ScoringSettings(name=settings)
    if not contributions:
        return Scores({})
    if not settings.needs_model:
        values = COUNTING[settings.name](contributions)
        weights = [int(v) for v in values]
        return Scores({c.pseudonym: w for c, w in zip(contributions, weights, strict=True)})
    if updates is None:
        raise ValueError(
            f"scorer {settings.name!r} prices updates on the server's validation data: give "
            "the strategy a validation callback (and keep screening on: it decodes the updates)"
        )
    n = len(contributions)
    if settings.name == "first-order":
        return _first_order(contributions, updates)
    method = settings.name
    if method == "exact-shapley" and 2**n - 1 > settings.budget:
        log(
            WARNING,
            "round %d: exact-shapley needs %d evaluations for %d contributions, over the "
            "budget of %d: estimating with kernel-shapley instead",
            server_round,
            2**n - 1,
            n,
            settings.budget,
        )
        method = "kernel-shapley"
    # one evaluation per contribution (+1) is these scorers' fixed price: not budgeted
    budget = None if method in ("loss-improvement", "leave-one-out") else settings.budget
    game = shapley.CachedGame(
        n, _RoundGame(updates, [c.num_examples for c in contributions]), budget
    )
    rng = np.random.default_rng([settings.seed, server_round])
    # a round whose model is no better than the one it started from earns nobody anything
    improved = game(game.everyone) > 0
    values = [float(v) for v in _GAME[method](game, rng)] if improved else [0.0] * n
    return Scores(
        weights={c.pseudonym: w for c, w in zip(contributions, _weights(values), strict=True)},
        values={c.pseudonym: v for c, v in zip(contributions, values, strict=True)},
        evaluations=game.evaluations + 1,  # + the starting model
        method=method,
    )
