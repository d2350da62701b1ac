"""``first-order``: the Shapley value of the round game's first-order approximation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from flwr.app import ArrayRecord

from strategies.round import RoundState, claim_shares
from strategies.scoring.base import Scorer, Valuation
from strategies.vectors import flatten


@dataclass(frozen=True)
class FirstOrder(Scorer):
    """Each update's weighted step along the validation utility's gradient, ``w_i g . delta_i``,
    the update taken at the round's median length (``delta_i / |delta_i| x median``).

    Priced at its own length, the value is linear in the norm and boosting pays; at one length
    for all, ``k x delta`` is worth exactly what ``delta`` is, and what is paid for is the
    direction (the norm bound applies the same idea to the model itself).

    The round's coalition game (see :mod:`strategies.scoring.coalition`) is additive to first
    order (Taylor), so this is its Shapley value: one gradient a round instead of dozens of
    evaluations, at the price of ignoring interactions between updates. A round whose
    aggregate is, to first order, no better pays nobody.

    Parameters
    ----------
    gradient : callable
        ``ArrayRecord -> ArrayRecord``: the gradient of the validation utility (same keys and
        shapes), on data the server holds.
    """

    name = "first-order"
    gradient: Callable[[ArrayRecord], ArrayRecord] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.gradient is None:
            raise ValueError(
                "scorer 'first-order' needs validation_gradient=<ArrayRecord -> ArrayRecord> "
                "(the gradient of the validation utility) passed to LedgerStrategy.wrap"
            )

    def values(self, state: RoundState) -> Valuation:
        assert self.gradient is not None and state.model is not None and state.deltas is not None
        model = state.model
        grad = flatten(self.gradient(model.record), keys=model.keys)
        assert state.norms is not None
        shares = claim_shares(state.candidates)
        norms = state.norms[[c.row for c in state.candidates]].astype(np.float64)
        length = float(np.median(norms))
        values = [
            float(share * np.dot(grad, state.deltas[c.row])) * length / norm if norm > 0 else 0.0
            for share, c, norm in zip(shares, state.candidates, norms, strict=True)
        ]
        if sum(values) <= 0:  # to first order, the round's aggregate is no better
            values = [0.0] * len(values)
        return Valuation(values, evaluations=1)
