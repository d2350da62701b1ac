"""``copied-update``: an update that points the same way as another's, now or recently."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flwr_stellar.reasons import Reason
from strategies.round import Candidate, RecentUpdate
from strategies.screening.base import Check, Cohort


@dataclass(frozen=True)
class CopiedUpdate(Check):
    """Near-duplicates by direction, not bytes: a copy plus a little noise is still a copy.

    A reply is rejected when its update is near-parallel to another reply's of this round, to
    an update another node had accepted in the last ``rounds`` rounds, or to one of those
    rounds' global steps. Near-parallel means both: a cosine of at least ``max_cosine``, and a
    cosine distance ``1 - cos`` at most ``relative`` x the median distance of the same kind of
    pair in this round (two replies of the round; a reply and another node's past update).
    The second condition is what keeps honest nodes safe where they all agree: on a smooth or
    IID problem honest updates sit at cosine 0.98 to each other, and a copy is only a copy if
    it is far closer to its original than honest updates are to each other.

    Within a round every member of a near-parallel pair goes (there is no telling which is
    the original); across rounds only the newcomer does. A node's own earlier updates do not
    count (its data is the same every round; by node id or, for a SuperNode that restarted
    under a new id, by pseudonym).

    Cosines are taken on a sketch: the same random coordinates of every update of the run
    (drawn from OS entropy when the run starts, so no node knows them), enough for a copy's
    cosine to within about 0.01 and cheap to keep for past rounds.

    What it cannot see: a copy drowned in noise as large as itself (cosine about 0.7 to its
    original) passes, but then half of what it sends is noise, which scorers pay little for.

    Parameters
    ----------
    max_cosine : float (default: 0.9)
        In (0, 1]; 1 switches the check off.
    relative : float (default: 0.25)
        In (0, 1]: how much closer than the round's median pair a copy is.
    rounds : int (default: 2)
        How many past rounds' updates and global steps a reply is compared with (0: this
        round only).
    min_parameters : int (default: 1000)
        Models with fewer parameters are not judged: in a handful of dimensions independent
        honest updates fall near-parallel by chance (cosines spread about ``1/sqrt(d)``).
    """

    name = "copied_update"
    uses_sketches = True
    reason = Reason.COPIED_UPDATE
    max_cosine: float = 0.9
    relative: float = 0.25
    rounds: int = 2
    min_parameters: int = 1000

    def __post_init__(self) -> None:
        if not 0 < self.max_cosine <= 1:
            raise ValueError(f"CopiedUpdate.max_cosine must be in (0, 1], got {self.max_cosine!r}")
        if not 0 < self.relative <= 1:
            raise ValueError(f"CopiedUpdate.relative must be in (0, 1], got {self.relative!r}")
        if self.rounds < 0:
            raise ValueError(f"CopiedUpdate.rounds must be >= 0, got {self.rounds!r}")

    @property
    def active(self) -> bool:
        return self.max_cosine < 1

    def copies(self, cosines: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """Which of ``cosines`` are copies, given the cosines of the ``pairs`` of that kind."""
        if not pairs.size:
            return np.zeros(cosines.shape, dtype=bool)
        typical = float(np.median(1.0 - pairs))
        close: np.ndarray = (cosines >= self.max_cosine) & (
            1.0 - cosines <= self.relative * typical
        )
        return close

    def judge(self, cohort: Cohort) -> Sequence[str | None]:
        sketches = cohort.sketches
        n = len(cohort.members)
        if sketches is None or n == 0 or cohort.base.size < self.min_parameters:
            return [None] * n
        unit = _unit_rows(sketches)
        out: list[str | None] = [None] * n
        if n > 2:
            cosines = unit @ unit.T
            copies = self.copies(cosines, cosines[np.triu_indices(n, 1)])
            np.fill_diagonal(copies, False)
            for i, j in zip(*np.nonzero(copies), strict=True):
                if out[i] is None:
                    node = cohort.members[j].node
                    out[i] = f"cosine {cosines[i, j]:.3f} to node {node}'s update this round"
        past = [
            u
            for u in cohort.state.recent
            if cohort.state.server_round - u.server_round <= self.rounds
        ]
        if not past:
            return out
        cosines = unit @ _unit_rows(np.stack([u.sketch for u in past])).T
        others = np.asarray([[not _same_sender(u, c) for u in past] for c in cohort.members])
        copies = self.copies(cosines, cosines[others]) & others
        for i, j in zip(*np.nonzero(copies), strict=True):
            if out[i] is None:
                u = past[j]
                whose = "the global step" if u.node < 0 else f"node {u.node}'s update"
                out[i] = f"cosine {cosines[i, j]:.3f} to {whose} of round {u.server_round}"
        return out


def _same_sender(update: RecentUpdate, candidate: Candidate) -> bool:
    """The candidate's own earlier update: same node, or same pseudonym (a restarted node)."""
    return update.node == candidate.node or bool(
        update.pseudonym and update.pseudonym == candidate.pseudonym
    )


def _unit_rows(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit: np.ndarray = rows / np.maximum(norms, np.finfo(np.float32).tiny)
    return unit
