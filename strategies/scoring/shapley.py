"""Values of a round's cooperative game: what each accepted update adds to the model.

A round is a game over its contributors: the value ``v(S)`` of a coalition ``S`` is how much
the model rebuilt from ``S``'s updates alone improves on the round's starting model, on data
the server holds (``v(∅) = 0``). Evaluating ``v`` means evaluating a model, which is what costs;
so every method here counts its evaluations, caches each coalition it has seen, and stops at a
budget.

- ``exact_shapley``: the Shapley value from all ``2^n`` coalitions (reference; small n only).
- ``gtg_shapley``: GTG-Shapley (Liu et al., ACM TIST 2022): Monte-Carlo permutations guided so
  that every contributor leads in turn (here in blocks of the ``n`` cyclic shifts of one random
  order, so each contributor takes every position once a block: each permutation is still
  uniformly random, and position noise cancels within a block), truncated within a
  permutation once the prefix is as good as the whole round (remaining marginals ~0), the
  whole round skipped when it gains nothing (between-round truncation), coalitions reused
  across permutations, stopped when the estimates settle or the budget is spent.
- ``kernel_shapley``: the Shapley value as the constrained weighted least-squares fit of the
  coalition values (KernelSHAP, Lundberg & Lee 2017) over a budgeted design: every singleton
  and every leave-one-out coalition first (the sizes the Shapley kernel weighs most), then
  random coalitions of the middle sizes with their complements. Each evaluation informs every
  contributor's estimate, which is why it ranks contributors far better than permutation
  sampling on the same small budget (tests/test_shapley.py measures both).
- ``leave_one_out``: ``v(N) - v(N \\ {i})``; ``individual_gain``: ``v({i})``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "BudgetExhausted",
    "CachedGame",
    "exact_shapley",
    "gtg_shapley",
    "individual_gain",
    "kernel_shapley",
    "leave_one_out",
]

Value = Callable[[frozenset[int]], float]


class BudgetExhausted(RuntimeError):
    """A method needed more coalition evaluations than its budget allowed."""


@dataclass
class CachedGame:
    """A coalition value function with a cache and an evaluation counter.

    Parameters
    ----------
    n : int
        Players ``0 .. n-1``.
    value : callable
        ``frozenset -> float``; never called for the empty coalition (its value is 0).
    budget : int, optional
        Most distinct coalitions to evaluate; one more raises :class:`BudgetExhausted`.
    """

    n: int
    value: Value
    budget: int | None = None
    evaluations: int = 0
    _cache: dict[frozenset[int], float] = field(default_factory=dict, repr=False)

    def __call__(self, coalition: frozenset[int]) -> float:
        if not coalition:
            return 0.0
        if coalition not in self._cache:
            if self.budget is not None and self.evaluations >= self.budget:
                raise BudgetExhausted(f"coalition budget of {self.budget} evaluations spent")
            self._cache[coalition] = float(self.value(coalition))
            self.evaluations += 1
        return self._cache[coalition]

    @property
    def everyone(self) -> frozenset[int]:
        return frozenset(range(self.n))


def exact_shapley(game: CachedGame) -> np.ndarray:
    """The Shapley value from every coalition: ``2^n - 1`` evaluations."""
    n = game.n
    values = np.zeros(n)
    weight = [math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) for k in range(n)]
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for k in range(n):
            for subset in itertools.combinations(others, k):
                s = frozenset(subset)
                values[i] += weight[k] * (game(s | {i}) - game(s))
    return values


def leave_one_out(game: CachedGame) -> np.ndarray:
    """What the round loses without each contributor: ``n + 1`` evaluations."""
    full = game(game.everyone)
    return np.array([full - game(game.everyone - {i}) for i in range(game.n)])


def individual_gain(game: CachedGame) -> np.ndarray:
    """What each contributor's update achieves alone: ``n`` evaluations."""
    return np.array([game(frozenset({i})) for i in range(game.n)])


def gtg_shapley(
    game: CachedGame,
    *,
    rng: np.random.Generator,
    eps_between: float = 1e-4,
    eps_within: float = 0.01,
    tolerance: float = 0.02,
    max_permutations: int = 500,
) -> np.ndarray:
    """Guided, truncated Monte-Carlo Shapley values within ``game.budget``.

    Parameters
    ----------
    game : CachedGame
        The round's game; its budget bounds the evaluations (the permutation that would
        exceed it is dropped, so every estimate averages whole permutations). When all
        ``2^n - 1`` coalitions fit the budget the exact value is returned instead.
    rng : numpy.random.Generator
        Seeded by the caller so that scores are reproducible.
    eps_between : float
        A round whose full coalition gains less than this is worth nothing to anyone.
    eps_within : float
        Within a permutation, once the prefix is within this fraction of ``v(N)``, the
        remaining contributors' marginals count as 0 (no evaluation).
    tolerance : float
        Stop when, over the last ``n`` permutations, no estimate moved by more than this
        fraction of the largest estimate's magnitude (after at least ``n`` permutations).
    max_permutations : int
        Hard cap on permutations.
    """
    n = game.n
    full = game(game.everyone)
    if abs(full) < eps_between:
        return np.zeros(n)
    if game.budget is None or 2**n - 1 <= game.budget:
        return exact_shapley(game)  # every coalition fits the budget: no need to sample
    sums = np.zeros(n)
    done = 0
    history: list[np.ndarray] = []
    while done < max_permutations:
        if done % n == 0:  # a block: n cyclic shifts of one random order
            base = rng.permutation(n)
        order = [int(j) for j in np.roll(base, -(done % n))]
        marginals = np.zeros(n)
        prefix: frozenset[int] = frozenset()
        previous = 0.0
        try:
            for i in order:
                if abs(full - previous) < eps_within * abs(full):
                    break  # the rest add ~nothing: their marginals stay 0
                prefix = prefix | {i}
                current = game(prefix)
                marginals[i] = current - previous
                previous = current
        except BudgetExhausted:
            break
        sums += marginals
        done += 1
        estimate = sums / done
        history.append(estimate)
        if done >= 2 * n:
            scale = max(float(np.max(np.abs(estimate))), 1e-12)
            drift = max(float(np.max(np.abs(estimate - h))) for h in history[-n:])
            if drift / scale < tolerance:
                break
    return sums / done if done else np.zeros(n)


def _kernel_weight(n: int, k: int) -> float:
    return (n - 1) / (math.comb(n, k) * k * (n - k))


def kernel_shapley(game: CachedGame, *, rng: np.random.Generator) -> np.ndarray:
    """Shapley values fitted to a budgeted sample of coalitions (see the module docstring).

    Parameters
    ----------
    game : CachedGame
        The round's game; with no budget, or one that fits every coalition, the exact value.
    rng : numpy.random.Generator
        Seeded by the caller so that scores are reproducible.
    """
    n = game.n
    if game.budget is None or 2**n - 1 <= game.budget or n <= 2:
        return exact_shapley(game)
    everyone = game.everyone
    full = game(everyone)
    design: list[frozenset[int]] = []
    for i in range(n):
        design += [frozenset({i}), everyone - {i}]
    sizes = list(range(2, n - 1))
    if sizes:
        p = np.array([1.0 / (k * (n - k)) for k in sizes])
        p /= p.sum()
        seen = set(design)
        room = game.budget - 1 - len(design)
        tries = 0
        while room >= 2 and tries < 100 * game.budget:
            tries += 1
            k = int(rng.choice(sizes, p=p))
            pick = frozenset(int(j) for j in rng.choice(n, size=k, replace=False))
            if pick in seen:
                continue
            seen |= {pick, everyone - pick}
            design += [pick, everyone - pick]
            room -= 2
    rows, values, weights = [], [], []
    for coalition in design:
        try:
            values.append(game(coalition))
        except BudgetExhausted:
            break
        row = np.zeros(n)
        row[sorted(coalition)] = 1.0
        rows.append(row)
        weights.append(_kernel_weight(n, len(coalition)))
    z, y, w = np.array(rows), np.array(values), np.sqrt(np.array(weights))
    # efficiency (the values add up to v(N)) eliminates the last unknown
    a = z[:, :-1] - z[:, [-1]]
    b = y - z[:, -1] * full
    head, *_ = np.linalg.lstsq(a * w[:, None], b * w, rcond=None)
    return np.append(head, full - head.sum())
