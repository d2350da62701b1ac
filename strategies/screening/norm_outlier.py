"""``norm-outlier``: an update much longer than the round's median."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flwr_stellar.reasons import Reason
from strategies.screening.base import Check, Cohort


@dataclass(frozen=True)
class NormOutlier(Check):
    """Reject norms above ``factor`` x the round's median norm (boosted or scaled updates).

    Parameters
    ----------
    factor : float (default: 3.0)
        0 switches the check off; otherwise >= 1.
    """

    name = "norm_outlier"
    reason = Reason.NORM_OUTLIER
    group = "robust-centre"
    factor: float = 3.0

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
