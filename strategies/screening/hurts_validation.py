"""``hurts-validation``: an update that, alone at its share, makes the server's model worse."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from flwr.app import ArrayRecord

from flwr_stellar.reasons import Reason
from strategies.round import claim_shares
from strategies.screening.base import Check, Cohort
from strategies.vectors import flat_utility


@dataclass(frozen=True)
class HurtsValidation(Check):
    """The server's own data as a trust root (in the spirit of FLTrust, Cao et al. 2021).

    Each surviving update is applied alone at its share of the round (its examples over all
    surviving examples) and rejected when the server's validation utility drops by more than
    ``tolerance`` x the round's median absolute gain. Honest non-IID updates can cost a
    balanced validation set a little on their own; a poisoned one costs about as much as an
    honest one gains. Costs one evaluation per reply plus one.

    Parameters
    ----------
    enabled : bool (default: False)
        Off unless asked for: it needs data on the server.
    tolerance : float (default: 0.5)
        Relative slack, >= 0.
    validation : callable, optional
        ``ArrayRecord -> float``, higher for a better model; required when enabled.
    """

    name = "hurts_validation"
    reason = Reason.HURTS_VALIDATION
    enabled: bool = False
    tolerance: float = 0.5
    validation: Callable[[ArrayRecord], float] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.tolerance >= 0:
            raise ValueError(f"HurtsValidation.tolerance must be >= 0, got {self.tolerance!r}")
        if self.enabled and self.validation is None:
            raise ValueError(
                "HurtsValidation.enabled prices updates on the server's data: pass "
                "validation=<ArrayRecord -> float> (LedgerStrategy.wrap(..., validation=...))"
            )

    @property
    def active(self) -> bool:
        return self.enabled

    def judge(self, cohort: Cohort) -> Sequence[str | None]:
        if self.validation is None or not cohort.members:
            return [None] * len(cohort.members)
        assert cohort.state.model is not None
        utility = flat_utility(self.validation, cohort.state.model.record)
        gains = validation_gains(cohort, utility)
        finite = [abs(g) for g in gains if np.isfinite(g)]
        floor = -self.tolerance * float(np.median(finite)) if finite else 0.0
        return [
            "validation utility is not finite at its share of the round"
            if not np.isfinite(gain)
            else f"validation utility {gain:+.4g} at its share of the round < {floor:+.4g}"
            if gain < floor
            else None
            for gain in gains
        ]


def validation_gains(cohort: Cohort, utility: Callable[[np.ndarray], float]) -> list[float]:
    """Each member's gain in validation utility when applied alone at its round share."""
    shares = claim_shares(cohort.members).astype(np.float32)
    buffer = np.empty_like(cohort.base)
    start = float(utility(cohort.base))
    gains = []
    for row, share in zip(cohort.rows, shares, strict=True):
        np.copyto(buffer, cohort.base)
        buffer += share * cohort.deltas[row]
        gains.append(float(utility(buffer)) - start)
    return gains
