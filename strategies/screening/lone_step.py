"""``overshoots-validation``: an update that, taken alone at the round's length, wrecks the
server's model: little work behind it, rescaled to look like a lot."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from flwr.app import ArrayRecord

from flwr_stellar.reasons import Reason
from strategies.screening.base import Check, Cohort
from strategies.vectors import flat_utility


@dataclass(frozen=True)
class LoneStep(Check):
    """Each update is applied alone, at the round's median norm, to the global model, and
    rejected when the server's validation utility drops by more than ``factor`` x the larger
    of the round's median drop and the utility's own size at the global model.

    An honest update is a trajectory of many small steps on a node's data: taken alone at full
    length it costs a balanced validation set a little (its data is skewed) or gains a little.
    A lazy node that trains on a few dozen examples and rescales its update to an honest norm
    sends a short extrapolation of one early gradient: well aimed (first-order pricing pays it
    more than honest nodes: it points along the validation gradient), but at full length it
    overshoots. Measured on the reference app (Dirichlet 0.5, 10 nodes, 8 rounds): honest
    updates cost at most 2.2 nats (median 0-0.6), rescaled lazy ones 1.4-187 (median 7); with
    the floor at the validation loss itself (0.4-0.8 nats) and ``factor`` 4, no honest update of
    80 and 23 lazy ones of 24 were over the line.

    A length-invariant test: the norm bound would hand any update that length anyway. Costs one
    evaluation per reply plus one; the reference app gives it a validation subset of its own.

    Parameters
    ----------
    enabled : bool (default: False)
        Off unless asked for: it needs data on the server.
    factor : float (default: 4.0)
        How many times the round's typical drop is too much, > 0.
    validation : callable, optional
        ``ArrayRecord -> float``, higher for a better model; required when enabled.
    """

    name = "lone_step"
    reason = Reason.OVERSHOOTS
    enabled: bool = False
    factor: float = 4.0
    validation: Callable[[ArrayRecord], float] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.factor > 0:
            raise ValueError(f"LoneStep.factor must be > 0, got {self.factor!r}")
        if self.enabled and self.validation is None:
            raise ValueError(
                "LoneStep.enabled prices updates on the server's data: pass "
                "validation=<ArrayRecord -> float> (LedgerStrategy.wrap(..., validation=...))"
            )

    @property
    def active(self) -> bool:
        return self.enabled

    def judge(self, cohort: Cohort) -> Sequence[str | None]:
        n = len(cohort.members)
        if self.validation is None or not cohort.enough_peers:
            return [None] * n
        assert cohort.state.model is not None
        utility = flat_utility(self.validation, cohort.state.model.record)
        start = float(utility(cohort.base))
        length = cohort.median_norm
        buffer = np.empty_like(cohort.base)
        drops = []
        for row, norm in zip(cohort.rows, cohort.norms, strict=True):
            np.copyto(buffer, cohort.base)
            if norm > 0:
                buffer += np.float32(length / float(norm)) * cohort.deltas[row]
            drops.append(start - float(utility(buffer)))
        finite = [d for d in drops if np.isfinite(d)]
        typical = max(float(np.median(finite)) if finite else 0.0, abs(start), 1e-12)
        limit = self.factor * typical
        return [
            "validation utility is not finite with it alone at the round's length"
            if not np.isfinite(drop)
            else f"alone at the round's length it costs the validation utility {drop:.4g} > "
            f"{self.factor:g} x {typical:.4g}"
            if drop > limit
            else None
            for drop in drops
        ]
