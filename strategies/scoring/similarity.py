"""``gradient-similarity``: pay for agreeing with the round's robust direction, data-free."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strategies.round import RoundState
from strategies.scoring.base import Scorer, Valuation
from strategies.screening.base import CENTRE_SAMPLE
from strategies.screening.median import coordinate_median


@dataclass(frozen=True)
class GradientSimilarity(Scorer):
    """Each update's cosine to the round's robust centre, ``max(0, cos(delta_i, centre))``.

    The cosine-gradient Shapley value of Xu et al. (NeurIPS 2021, CGSV) prices an update by
    its cosine to the aggregate; here the aggregate is the coordinate-wise median of the
    updates' directions (unit vectors, drawn over at most ``CENTRE_SAMPLE`` of them, so that
    ``k x delta`` changes nothing anywhere), which colluders holding
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
        assert state.deltas is not None
        members = state.candidates
        rows = [c.row for c in members]
        chosen = list(range(len(members)))
        if len(chosen) > CENTRE_SAMPLE:
            drawn = np.random.default_rng().choice(len(chosen), CENTRE_SAMPLE, replace=False)
            chosen = sorted(int(i) for i in drawn)
        assert state.norms is not None
        norms = np.maximum(state.norms[[rows[i] for i in chosen]], np.finfo(np.float32).tiny)
        directions = state.deltas[[rows[i] for i in chosen]] / norms[:, None].astype(np.float32)
        centre = coordinate_median(directions)
        centre_norm = float(np.linalg.norm(centre))
        if not np.isfinite(centre_norm) or centre_norm == 0:
            return Valuation([0.0] * len(members))
        unit = centre / centre_norm
        values = []
        for row in rows:
            delta = state.deltas[row]
            norm = float(np.linalg.norm(delta))
            cosine = float(np.dot(delta, unit)) / norm if norm > 0 else 0.0
            values.append(max(0.0, cosine) if np.isfinite(cosine) else 0.0)
        return Valuation(values)
