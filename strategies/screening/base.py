"""What a screening check is: one class, its own settings, exactly one reason.

A check judges a **cohort**: the candidates that survived every earlier check, with the
round's statistics over them (median norm, median claim, the robust centre, cosines to the
last global step), computed once, lazily. Checks that share a ``group`` judge the same
cohort: their statistics come from the same, unthinned set of candidates, and a candidate
goes out on the first of them that fails it. (That is why the norm/centre checks form one
group: removing honest updates before the median is taken could hand the median to the
attackers.) A check whose ``group`` is empty is a group of its own.

An app's own check subclasses :class:`ReplyCheck` (one reply at a time) or :class:`Check`
(the whole cohort), sets ``name`` and ``reason``, and goes into
``Screening(checks=(*default_checks(), MyCheck()))``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np

from strategies.round import Candidate, RoundState
from strategies.screening.median import coordinate_median

__all__ = ["CENTRE_SAMPLE", "Check", "Cohort", "ReplyCheck", "unit_step"]

CENTRE_SAMPLE = 101  # members the robust centre of a large cohort is taken over


@dataclass(frozen=True)
class Check(ABC):
    """A screening check: settings as dataclass fields, one reason, one verdict per member.

    Attributes
    ----------
    name : ClassVar[str]
        Its settings section (``screening.<name>.<field>`` in a run config).
    reason : ClassVar[str]
        The one reason it rejects with (a :class:`flwr_stellar.reasons.Reason` for the
        library's own checks; any short string for an app's).
    group : ClassVar[str]
        Checks of one group judge the same cohort ("" = a group of its own).
    uses_sketches : ClassVar[bool]
        True when it reads ``Cohort.sketches`` (the run then draws sketch coordinates).
    """

    name: ClassVar[str]
    reason: ClassVar[str]
    group: ClassVar[str] = ""
    uses_sketches: ClassVar[bool] = False

    @property
    def active(self) -> bool:
        """False when its settings switch it off (then it is skipped, costing nothing)."""
        return True

    @abstractmethod
    def judge(self, cohort: Cohort) -> Sequence[str | None]:
        """Per member of ``cohort``, in order: why it is rejected, or None to pass it."""


@dataclass(frozen=True)
class ReplyCheck(Check):
    """A check of each reply on its own (no round statistics)."""

    def judge(self, cohort: Cohort) -> Sequence[str | None]:
        return [self.judge_one(c, cohort) for c in cohort.members]

    @abstractmethod
    def judge_one(self, candidate: Candidate, cohort: Cohort) -> str | None:
        """Why ``candidate`` is rejected, or None."""


def unit_step(base: np.ndarray, previous_base: np.ndarray | None) -> np.ndarray | None:
    """The unit vector from ``previous_base`` to ``base`` (None: no previous model or step)."""
    if previous_base is None or previous_base.shape != base.shape:
        return None
    step: np.ndarray = np.subtract(base, previous_base, dtype=np.float32)
    norm = float(np.linalg.norm(step))
    if not np.isfinite(norm) or norm == 0.0:
        return None
    step /= norm
    return step


class Cohort:
    """Candidates judged together, and the round statistics over exactly them.

    Parameters
    ----------
    state : RoundState
        The round (its delta matrix, norms, global model, history).
    members : sequence of Candidate
        Who is judged.
    min_peers : int
        Relative statistics are only trusted over at least this many members.
    step : numpy.ndarray or None
        The last global step, unit length (shared by the round's cohorts).
    """

    def __init__(
        self,
        state: RoundState,
        members: Sequence[Candidate],
        min_peers: int,
        step: np.ndarray | None,
    ) -> None:
        assert state.deltas is not None and state.norms is not None and state.model is not None
        self.state = state
        self.members = tuple(members)
        self.min_peers = min_peers
        self.step = step
        self.deltas: np.ndarray = state.deltas
        self.rows = [c.row for c in self.members]
        self.norms: np.ndarray = state.norms[self.rows]
        self.base: np.ndarray = state.model.base
        self.watched = state.watched

    @property
    def enough_peers(self) -> bool:
        """Relative checks judge only cohorts of at least ``min_peers``."""
        return len(self.members) >= self.min_peers

    @cached_property
    def median_norm(self) -> float:
        return float(np.median(self.norms)) if len(self.norms) else 0.0

    @cached_property
    def median_claim(self) -> float:
        return float(np.median([c.num_examples for c in self.members])) if self.members else 0.0

    @cached_property
    def centre(self) -> np.ndarray | None:
        """The coordinate-wise median update, unit length (None when it is zero).

        Over more than ``CENTRE_SAMPLE`` members it is the median of that many members drawn
        at random (fresh OS entropy each round, so no node can arrange to be drawn): with 30 %
        attackers the chance that they hold half of 101 draws is about 1e-5, and the median of
        1,000 rows of 225k parameters costs several times what FedAvg's whole aggregate does.
        """
        rows = self.rows
        if len(rows) > CENTRE_SAMPLE:
            drawn = np.random.default_rng().choice(len(rows), CENTRE_SAMPLE, replace=False)
            rows = [rows[i] for i in sorted(drawn)]
        centre = coordinate_median(self.deltas, rows)
        norm = float(np.linalg.norm(centre))
        return centre / norm if norm > 0 and np.isfinite(norm) else None

    def centre_cosine(self, i: int) -> float:
        """Cosine of member ``i``'s update to the robust centre (0 without a centre)."""
        centre, norm = self.centre, float(self.norms[i])
        if centre is None or norm == 0:
            return 0.0
        return float(np.dot(self.deltas[self.rows[i]], centre)) / norm

    @cached_property
    def sketches(self) -> np.ndarray | None:
        """Each member's update at the run's sketch coordinates (None without them)."""
        index = self.state.sketch_index
        if index is None:
            return None
        sketches: np.ndarray = self.deltas[np.asarray(self.rows, dtype=np.intp)][:, index]
        return sketches

    @cached_property
    def step_cosines(self) -> np.ndarray | None:
        """Each member's cosine to the last global step (None in the first round)."""
        if self.step is None:
            return None
        dots = np.asarray([float(np.dot(self.deltas[r], self.step)) for r in self.rows])
        cosines: np.ndarray = dots / np.maximum(self.norms, np.finfo(np.float64).tiny)
        return cosines
