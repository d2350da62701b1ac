"""``cosine-too-low``: an update that disagrees with the round's robust centre."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flwr_stellar.reasons import Reason
from strategies.screening.base import Check, Cohort


@dataclass(frozen=True)
class CentreCosine(Check):
    """Reject updates whose cosine to the coordinate-wise median update is below a floor.

    A node under watch (rejected, or worth nothing, in a recent round) gets no benefit of the
    doubt: it must agree with the centre at least ``watched_min_cosine``.

    Parameters
    ----------
    min_cosine : float (default: -0.2)
        In [-1, 1]; -1 switches the floor off. Honest non-IID updates can sit near 0 in
        early rounds, hence slightly negative.
    watched_min_cosine : float (default: 0.0)
        The floor for watched nodes, in [-1, 1].
    """

    name = "centre_cosine"
    reason = Reason.COSINE
    group = "robust-centre"
    min_cosine: float = -0.2
    watched_min_cosine: float = 0.0

    def __post_init__(self) -> None:
        for field_name in ("min_cosine", "watched_min_cosine"):
            value = getattr(self, field_name)
            if not -1 <= value <= 1:
                raise ValueError(f"CentreCosine.{field_name} must be in [-1, 1], got {value!r}")

    @property
    def active(self) -> bool:
        return self.min_cosine > -1 or self.watched_min_cosine > -1

    def judge(self, cohort: Cohort) -> Sequence[str | None]:
        if not cohort.enough_peers or cohort.centre is None:
            return [None] * len(cohort.members)
        out: list[str | None] = []
        for i, c in enumerate(cohort.members):
            watched = c.node in cohort.watched
            floor = max(self.min_cosine, self.watched_min_cosine) if watched else self.min_cosine
            cosine = cohort.centre_cosine(i)
            out.append(
                f"cosine to the median update {cosine:.3f} < {floor:g}"
                + (" (watched: rejected or worthless in a recent round)" if watched else "")
                if cosine < floor
                else None
            )
        return out
