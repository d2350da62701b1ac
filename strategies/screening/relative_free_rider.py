"""``free-rider``: an update far shorter than the round's median."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flwr_stellar.reasons import Reason
from strategies.screening.base import Check, Cohort


@dataclass(frozen=True)
class RelativeFreeRider(Check):
    """Reject an update whose norm is below ``min_relative_norm`` x the round's median: it
    (almost) sends the global model back, noise added or not.

    Parameters
    ----------
    min_relative_norm : float (default: 0.001)
        In [0, 1); 0 switches the check off.
    """

    name = "relative_free_rider"
    reason = Reason.FREE_RIDER
    group = "robust-centre"
    min_relative_norm: float = 0.001

    def __post_init__(self) -> None:
        if not 0 <= self.min_relative_norm < 1:
            raise ValueError(
                "RelativeFreeRider.min_relative_norm must be in [0, 1), "
                f"got {self.min_relative_norm!r}"
            )

    @property
    def active(self) -> bool:
        return self.min_relative_norm > 0

    def judge(self, cohort: Cohort) -> Sequence[str | None]:
        if not cohort.enough_peers:
            return [None] * len(cohort.members)
        median = cohort.median_norm
        floor = self.min_relative_norm * median
        return [
            f"update norm {n:.3g} < {self.min_relative_norm:g} x round median {median:.4g}"
            if n < floor
            else None
            for n in cohort.norms
        ]
