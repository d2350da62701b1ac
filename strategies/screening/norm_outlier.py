"""``norm-outlier``: an update much longer than the round's median."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flwr_stellar.reasons import Reason
from strategies.screening.base import Check, Cohort


@dataclass(frozen=True)
class NormOutlier(Check):
    """Reject norms above ``factor`` x the round's median norm (boosted or scaled updates).

    The norm bound already takes away what a boost would buy (``strategies.bounding``); this
    check makes boosting cost the booster: rejected, it loses trust and its held rewards.
    Measured on the reference app (Dirichlet 0.5, 10 nodes, 3 runs of 8 rounds): honest norms
    at 0.75-1.63 x the round's median; a x3 boost at 2.5-3.5 x, which the former default of 3
    caught in 1 round of 15.

    Parameters
    ----------
    factor : float (default: 2.0)
        0 switches the check off; otherwise >= 1.
    """

    name = "norm_outlier"
    reason = Reason.NORM_OUTLIER
    group = "robust-centre"
    factor: float = 2.0

    def __post_init__(self) -> None:
        if not (self.factor == 0 or self.factor >= 1):
            raise ValueError(f"NormOutlier.factor must be 0 or >= 1, got {self.factor!r}")

    @property
    def active(self) -> bool:
        return self.factor > 0

    def judge(self, cohort: Cohort) -> Sequence[str | None]:
        if not cohort.enough_peers:
            return [None] * len(cohort.members)
        limit, median = self.factor * cohort.median_norm, cohort.median_norm
        return [
            f"update norm {n:.4g} > {self.factor:g} x round median {median:.4g}"
            if n > limit
            else None
            for n in cohort.norms
        ]
