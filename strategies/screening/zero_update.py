"""``free-rider``: an update identical to the global model."""

from __future__ import annotations

from dataclasses import dataclass

from flwr_stellar.reasons import Reason
from strategies.round import Candidate
from strategies.screening.base import Cohort, ReplyCheck


@dataclass(frozen=True)
class ZeroUpdate(ReplyCheck):
    """Reject a reply that sends the global model back unchanged: it did no work."""

    name = "zero_update"
    reason = Reason.FREE_RIDER

    def judge_one(self, candidate: Candidate, cohort: Cohort) -> str | None:
        if float(cohort.state.norms[candidate.row]) == 0.0:  # type: ignore[index]
            return "update identical to the global model"
        return None
