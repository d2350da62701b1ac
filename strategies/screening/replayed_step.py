"""``replayed-global-step``: the last global step sent back as the node's own update."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flwr_stellar.reasons import Reason
from strategies.screening.base import Check, Cohort


@dataclass(frozen=True)
class ReplayedGlobalStep(Check):
    """Delta-weights free rider (Fraboni et al. 2021): it needs no data, it sends the step the
    server itself made last round.

    The server knows that step, so it compares each update with it (after the first round).
    Honest demo updates sit at <= 0.40. Where honest updates themselves follow the last step
    closely (smooth problems, near full-batch training), the bound tightens towards 1 with the
    round's median cosine, ``max(max_step_cosine, 1 - (1 - median) / 10)``, so only a replay
    closer to the step than honest training gets is rejected.

    Parameters
    ----------
    max_step_cosine : float (default: 0.95)
        In (0, 1]; 1 switches the check off.
    """

    name = "replayed_global_step"
    reason = Reason.REPLAYED_GLOBAL_STEP
    group = "global-step"
    max_step_cosine: float = 0.95

    def __post_init__(self) -> None:
        if not 0 < self.max_step_cosine <= 1:
            raise ValueError(
                "ReplayedGlobalStep.max_step_cosine must be in (0, 1], "
                f"got {self.max_step_cosine!r}"
            )

    @property
    def active(self) -> bool:
        return self.max_step_cosine < 1

    def judge(self, cohort: Cohort) -> Sequence[str | None]:
        cosines = cohort.step_cosines
        if cosines is None or not cohort.enough_peers:
            return [None] * len(cohort.members)
        median = float(np.median(cosines))
        upper = max(self.max_step_cosine, 1 - (1 - median) / 10)
        return [
            f"cosine to the last global step {cos:.4f} > {upper:.4g} (round median {median:.3f})"
            if cos > upper
            else None
            for cos in cosines
        ]
