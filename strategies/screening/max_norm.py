"""``norm-too-large``: an absolute bound on an update's length."""

from __future__ import annotations

from dataclasses import dataclass

from flwr_stellar.reasons import Reason
from strategies.round import Candidate
from strategies.screening.base import Cohort, ReplyCheck


@dataclass(frozen=True)
class MaxNorm(ReplyCheck):
    """Reject updates longer than an absolute L2 bound (for apps that know their scale).

    Parameters
    ----------
    max_norm : float (default: 0.0)
        The bound; 0 switches the check off.
    """

    name = "max_norm"
    reason = Reason.NORM
    max_norm: float = 0.0

    def __post_init__(self) -> None:
        if not self.max_norm >= 0:
            raise ValueError(f"MaxNorm.max_norm must be >= 0 (0 disables), got {self.max_norm!r}")

    @property
    def active(self) -> bool:
        return self.max_norm > 0

    def judge_one(self, candidate: Candidate, cohort: Cohort) -> str | None:
        norm = float(cohort.state.norms[candidate.row])  # type: ignore[index]
        if norm > self.max_norm:
            return f"update norm {norm:.4g} > max_norm {self.max_norm:.4g}"
        return None
