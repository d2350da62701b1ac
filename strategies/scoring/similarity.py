"""``gradient-similarity``: pay for agreeing with the round's robust direction, data-free."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strategies.round import RoundState
from strategies.scoring.base import Scorer, Valuation
from strategies.screening.base import CENTRE_SAMPLE
from strategies.screening.median import coordinate_median

LEAVE_ONE_OUT = 16  # rounds up to this size price each update against the others' centre


@dataclass(frozen=True)
class GradientSimilarity(Scorer):
    """Each update's cosine to the round's robust centre, ``max(0, cos(delta_i, centre))``.

    The cosine-gradient Shapley value of Xu et al. (NeurIPS 2021, CGSV) prices an update by
    its cosine to the aggregate; here the aggregate is the coordinate-wise median of the
    updates' directions (unit vectors, so that ``k x delta`` changes nothing anywhere): of the
    others' in rounds of up to ``LEAVE_ONE_OUT`` updates, of ``CENTRE_SAMPLE`` drawn at random
    in larger ones, which colluders holding
    fewer than half the replies cannot pull towards themselves. It needs no server data, so it
    is the default of apps that have none, and it pays neither for length (the norm bound
    takes that away) nor for claims (which a node without data on the server can inflate
    freely): an update pointing where the honest majority points earns most, noise about
    nothing, a reversed update nothing. Nodes with worse data point less well and earn less.

    What it cannot see: an update that agrees with the majority without the work behind it
    (a rescaled lazy update, a copy of the centre itself) is paid like an honest one; the
    screening checks (``claim_exceeds_work``, ``copied_update``) are what stand against those.
    """

    name = "gradient-similarity"

    def values(self, state: RoundState) -> Valuation:
        assert state.deltas is not None and state.norms is not None
        members = state.candidates
        rows = [c.row for c in members]
        norms = np.maximum(state.norms[rows], np.finfo(np.float32).tiny).astype(np.float32)
        if len(members) <= LEAVE_ONE_OUT:
            # each against the median of the others: a row would otherwise pull the median
            # its own way (measured: noise earned a fifth of an honest update in a round of 8)
            directions = state.deltas[rows] / norms[:, None]
            values = [
                _cosine(directions[i], coordinate_median(np.delete(directions, i, axis=0)))
                for i in range(len(members))
            ]
            return Valuation(values)
        drawn = np.random.default_rng().choice(len(members), CENTRE_SAMPLE, replace=False)
        chosen = sorted(int(i) for i in drawn)
        sample = state.deltas[[rows[i] for i in chosen]] / norms[chosen][:, None]
        centre = coordinate_median(sample)
        pairs = zip(rows, norms, strict=True)
        return Valuation([_cosine(state.deltas[r] / n, centre) for r, n in pairs])


def _cosine(direction: np.ndarray, centre: np.ndarray) -> float:
    """max(0, cos(direction, centre)) for a unit ``direction`` (0 for a zero centre)."""
    norm = float(np.linalg.norm(centre))
    if not np.isfinite(norm) or norm == 0:
        return 0.0
    cosine = float(np.dot(direction, centre)) / norm
    return max(0.0, cosine) if np.isfinite(cosine) else 0.0
