"""``claim-outlier``: a claim far above the round's median claim."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flwr_stellar.reasons import Reason
from strategies.screening.base import Check, Cohort


@dataclass(frozen=True)
class ClaimOutlier(Check):
    """Reject a claimed example count above ``factor`` x the round's median claim.

    Intake's bound is absolute (a million by default); within it, a node claiming 999,999
    examples took 99.96 % of a ``num-examples`` round and the same weight in FedAvg. A claim is
    the one input no server without the node's data can verify, so it is held to the peers':
    an honest node with several times the median's data is rare in a round, a hostile one that
    names a big number is not. Below ``min_peers`` replies there is no median to trust and the
    absolute bound alone applies.

    Parameters
    ----------
    factor : float (default: 3.0)
        0 switches the check off; otherwise >= 1.
    """

    name = "claim_outlier"
    reason = Reason.CLAIM_OUTLIER
    factor: float = 3.0

    def __post_init__(self) -> None:
        if not (self.factor == 0 or self.factor >= 1):
            raise ValueError(f"ClaimOutlier.factor must be 0 or >= 1, got {self.factor!r}")

    @property
    def active(self) -> bool:
        return self.factor > 0

    def judge(self, cohort: Cohort) -> Sequence[str | None]:
        if not cohort.enough_peers:
            return [None] * len(cohort.members)
        median = cohort.median_claim
        limit = self.factor * median
        return [
            f"claims {c.num_examples} examples > {self.factor:g} x round median {median:g}"
            if c.num_examples > limit
            else None
            for c in cohort.members
        ]
