"""``claim-exceeds-work``: an update too short for the examples it claims."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flwr_stellar.reasons import Reason
from strategies.screening.base import Check, Cohort


@dataclass(frozen=True)
class ClaimExceedsWork(Check):
    """Lazy free rider: an update whose norm is below ``min_work_ratio`` x what its claimed
    examples predict.

    Local training takes one step per batch, so an update's norm grows with the examples
    behind it; the prediction is the round's median norm x min(1, claim / median claim), a
    linear scaling that under-predicts (norms grow slower than linearly in steps), so honest
    nodes with few examples stay clear of it. Measured on the demo (Dirichlet 0.5): honest
    updates at 0.80-1.31 of the prediction, a node training on a tenth of its claim at
    0.16-0.38.

    Parameters
    ----------
    min_work_ratio : float (default: 0.5)
        In [0, 1); 0 switches the check off.
    """

    name = "claim_exceeds_work"
    reason = Reason.CLAIM_EXCEEDS_WORK
    group = "robust-centre"
    min_work_ratio: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.min_work_ratio < 1:
            raise ValueError(
                f"ClaimExceedsWork.min_work_ratio must be in [0, 1), got {self.min_work_ratio!r}"
            )

    @property
    def active(self) -> bool:
        return self.min_work_ratio > 0

    def judge(self, cohort: Cohort) -> Sequence[str | None]:
        if not cohort.enough_peers:
            return [None] * len(cohort.members)
        median_norm, median_claim = cohort.median_norm, cohort.median_claim
        out: list[str | None] = []
        for c, norm in zip(cohort.members, cohort.norms, strict=True):
            predicted = median_norm * min(1.0, c.num_examples / median_claim)
            out.append(
                f"update norm {norm:.4g} < {self.min_work_ratio:g} x {predicted:.4g}, the norm "
                f"{c.num_examples} examples predict (round median {median_norm:.4g} at "
                f"{median_claim:g} examples)"
                if norm < self.min_work_ratio * predicted
                else None
            )
        return out
