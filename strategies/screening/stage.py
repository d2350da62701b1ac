"""The screening stage, its settings, the history it keeps, and the one-stage wrapper."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from itertools import groupby
from logging import ERROR, INFO
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message, MessageType, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from flwr_stellar.reasons import VERIFICATION_REASONS, Rejected
from strategies.bounding import Bound, NormBound
from strategies.intake import IntakeSettings
from strategies.pipeline import PipelineStrategy
from strategies.round import ModelReference, RecentUpdate, RoundState
from strategies.screening.base import Check, Cohort, unit_step
from strategies.screening.centre_cosine import CentreCosine
from strategies.screening.claim_exceeds_work import ClaimExceedsWork
from strategies.screening.claim_outlier import ClaimOutlier
from strategies.screening.cluster_outlier import ClusterOutlier
from strategies.screening.copied_update import CopiedUpdate
from strategies.screening.copies import IdenticalCopies
from strategies.screening.hurts_validation import HurtsValidation
from strategies.screening.lone_step import LoneStep
from strategies.screening.max_norm import MaxNorm
from strategies.screening.norm_outlier import NormOutlier
from strategies.screening.relative_free_rider import RelativeFreeRider
from strategies.screening.replayed_step import ReplayedGlobalStep
from strategies.screening.reversed_step import ReversesGlobalStep
from strategies.screening.zero_update import ZeroUpdate
from strategies.verified import Verify

__all__ = [
    "CHECKS",
    "Screen",
    "Screening",
    "ScreeningHistory",
    "ScreeningStrategy",
    "default_checks",
    "screen_replies",
]

# The library's checks, in the order they run (the one place a new check is registered).
CHECKS: tuple[type[Check], ...] = (
    MaxNorm,
    ZeroUpdate,
    IdenticalCopies,
    ClaimOutlier,
    NormOutlier,
    RelativeFreeRider,
    ClaimExceedsWork,
    CentreCosine,
    ReplayedGlobalStep,
    ReversesGlobalStep,
    CopiedUpdate,
    ClusterOutlier,
    HurtsValidation,
    LoneStep,
)


VALIDATING = (HurtsValidation, LoneStep)  # the checks that price updates on server data


def default_checks(
    options: Mapping[str, Mapping[str, Any]] | None = None,
    validation: Callable[[ArrayRecord], float] | None = None,
) -> tuple[Check, ...]:
    """The library's checks with their defaults, or with ``options`` per check name.

    Parameters
    ----------
    options : Mapping[str, Mapping[str, Any]], optional
        ``{check name: {field: value}}``, e.g. ``{"norm_outlier": {"factor": 2.0}}``.
    validation : callable, optional
        The server's validation utility, for ``hurts_validation`` and ``lone_step`` when their
        options enable them.

    Raises
    ------
    ValueError
        An unknown check name or field (naming it), or a value its check refuses.
    """
    options = dict(options or {})
    unknown = sorted(set(options) - {c.name for c in CHECKS})
    if unknown:
        raise ValueError(
            f"Screening: unknown check(s) {unknown}; known: {[c.name for c in CHECKS]}"
        )
    checks: list[Check] = []
    for cls in CHECKS:
        given = dict(options.get(cls.name, {}))
        names = {f.name for f in fields(cls)}
        bad = sorted(set(given) - names)
        if bad:
            raise ValueError(f"{cls.__name__}: unknown setting(s) {bad}; known: {sorted(names)}")
        if cls in VALIDATING and given.get("enabled"):
            given["validation"] = validation
        checks.append(cls(**given))
    return tuple(checks)


@dataclass(frozen=True)
class Screening:
    """The screening stage's settings: which checks, in which order, with what history.

    Parameters
    ----------
    enabled : bool (default: True)
        False passes every decoded, verified reply through.
    checks : tuple of Check
        In order (default: :func:`default_checks`). Add an app's own with
        ``Screening(checks=(*default_checks(), MyCheck()))``.
    min_peers : int (default: 3)
        Relative checks judge a cohort only when it has at least this many replies.
    watch_rounds : int (default: 3)
        History: a node rejected, or worth nothing while others were worth something, is
        watched for this many rounds after (checks may hold it to stricter bounds; 0 = none).
    """

    enabled: bool = True
    checks: tuple[Check, ...] = field(default_factory=default_checks)
    min_peers: int = 3
    watch_rounds: int = 3

    def __post_init__(self) -> None:
        if self.min_peers < 2:
            raise ValueError(f"Screening.min_peers must be >= 2, got {self.min_peers!r}")
        if self.watch_rounds < 0:
            raise ValueError(f"Screening.watch_rounds must be >= 0, got {self.watch_rounds!r}")
        for check in self.checks:
            if not isinstance(check, Check):
                raise TypeError(
                    f"Screening.checks must hold Check instances, got {type(check).__name__}"
                )
            if not getattr(check, "name", "") or not getattr(check, "reason", ""):
                raise TypeError(f"{type(check).__name__} must set class attributes name, reason")

    def describe(self) -> dict[str, Any]:
        """The settings as plain data (for the config hash and the summary)."""
        return {
            "enabled": self.enabled,
            "min_peers": self.min_peers,
            "watch_rounds": self.watch_rounds,
            "checks": [
                {"name": c.name, "reason": str(c.reason)}
                | {
                    f.name: getattr(c, f.name)
                    for f in fields(c)
                    if f.compare and isinstance(getattr(c, f.name), bool | int | float | str)
                }
                for c in self.checks
            ],
        }


class Screen:
    """The screening stage: each check in order, on the cohort its group judges.

    Parameters
    ----------
    screening : Screening
        Checks and thresholds.
    """

    def __init__(self, screening: Screening) -> None:
        self.screening = screening

    def __call__(self, state: RoundState) -> RoundState:
        s = self.screening
        if not s.enabled or not state.is_train or state.model is None or not state.candidates:
            return state
        step = unit_step(state.model.base, state.previous_base)
        alive = list(state.candidates)
        rejected: list[Rejected] = []
        active = [c for c in s.checks if c.active]
        for _, grouped in groupby(enumerate(active), key=lambda ic: ic[1].group or f"#{ic[0]}"):
            group = [check for _, check in grouped]
            cohort = Cohort(state, alive, s.min_peers, step)
            verdicts = [_judged(check, cohort) for check in group]
            keep = []
            for i, c in enumerate(alive):
                failed = next(
                    ((check, v[i]) for check, v in zip(group, verdicts, strict=True) if v[i]),
                    None,
                )
                if failed is None:
                    keep.append(c)
                else:
                    check, detail = failed
                    reason = str(check.reason)
                    rejected.append(Rejected(c.node, reason, str(detail), c.pseudonym))
            alive = keep
        return replace(state, candidates=tuple(alive), rejected=state.rejected + tuple(rejected))


def _judged(check: Check, cohort: Cohort) -> Sequence[str | None]:
    """The check's verdicts; a check that raises or miscounts abstains (and says so loudly):
    an app's check must not let a node's data end the run."""
    try:
        verdicts = [None if v is None else str(v)[:500] for v in check.judge(cohort)]
    except Exception as err:
        log(ERROR, "screening check %s failed and abstains this round: %r", check.name, err)
        return [None] * len(cohort.members)
    if len(verdicts) != len(cohort.members):
        log(
            ERROR,
            "screening check %s returned %d verdicts for %d replies and abstains this round",
            check.name,
            len(verdicts),
            len(cohort.members),
        )
        return [None] * len(cohort.members)
    return verdicts


SKETCH_SIZE = 8192  # coordinates of an update kept for copy checks across rounds


class ScreeningHistory:
    """What screening remembers across rounds: who is watched, the last global model, and a
    sketch of recent rounds' accepted updates and global steps.

    Parameters
    ----------
    watch_rounds : int
        How long a node stays watched after a rejection or a worthless contribution.
    recent_rounds : int (default: 0)
        How many rounds of accepted updates to keep sketches of (what ``copied_update``
        compares with).
    sketching : bool (default: False)
        Whether rounds get sketch coordinates at all (a check compares directions by them).
    """

    def __init__(self, watch_rounds: int, recent_rounds: int = 0, sketching: bool = False) -> None:
        self.watch_rounds = watch_rounds
        self.recent_rounds = recent_rounds if sketching else 0
        self.sketching = sketching
        self.watch_until: dict[int, int] = {}
        self._last: tuple[int, np.ndarray] | None = None  # (round, flat global model)
        self._index: np.ndarray | None = None
        self._recent: list[RecentUpdate] = []

    @classmethod
    def of(cls, screening: Screening) -> ScreeningHistory:
        """The history ``screening``'s checks need."""
        active = [c for c in screening.checks if c.active] if screening.enabled else []
        rounds = [c.rounds for c in active if isinstance(c, CopiedUpdate)]
        sketching = any(c.uses_sketches for c in active)
        return cls(screening.watch_rounds, max(rounds, default=0), sketching=sketching)

    def sketch_index(self, size: int) -> np.ndarray | None:
        """The run's sketch coordinates for models of ``size`` parameters (drawn once, from OS
        entropy; None when no check compares across rounds or within them by direction)."""
        if size <= 0 or not self.sketching:
            return None
        if self._index is None or (self._index.size and int(self._index[-1]) >= size):
            count = min(size, SKETCH_SIZE)
            drawn = np.random.default_rng().choice(size, count, replace=False)
            self._index = np.sort(drawn).astype(np.intp)
            self._recent = []
        return self._index

    def memory(self, server_round: int, model: ModelReference | None) -> dict[str, Any]:
        """What a round starts with (``PipelineStrategy.received``'s ``memory``)."""
        return {
            "previous_base": self.previous_base(server_round),
            "watched": self.watched(server_round),
            "recent": self.recent(server_round),
            "sketch_index": self.sketch_index(model.size) if model is not None else None,
        }

    def recent(self, server_round: int) -> tuple[RecentUpdate, ...]:
        """Sketches of the accepted updates and global steps of the rounds before."""
        oldest = server_round - self.recent_rounds
        return tuple(u for u in self._recent if oldest <= u.server_round < server_round)

    def watched(self, server_round: int) -> frozenset[int]:
        """Nodes under watch in ``server_round``."""
        return frozenset(n for n, until in self.watch_until.items() if until >= server_round)

    def previous_base(self, server_round: int) -> np.ndarray | None:
        """The global model round ``server_round - 1`` started from (None if unknown)."""
        last = self._last
        return last[1] if last is not None and last[0] == server_round - 1 else None

    def watch(self, node: int, server_round: int) -> None:
        """Watch ``node`` for ``watch_rounds`` rounds after ``server_round``."""
        if self.watch_rounds:
            until = server_round + self.watch_rounds
            self.watch_until[node] = max(until, self.watch_until.get(node, 0))

    def record(self, state: RoundState) -> None:
        """Learn from a finished round: rejections (not failed signatures, which say nothing
        about the node's data) and, when the round was worth something, the contributions
        the scorer found worth nothing."""
        if not state.is_train or state.model is None:
            return
        for r in state.rejected:
            if r.reason not in VERIFICATION_REASONS:
                self.watch(r.node, state.server_round)
        if any(state.scores.values()):
            for c in state.candidates:
                if state.scores.get(c.pseudonym, 0) == 0:
                    self.watch(c.node, state.server_round)
        self._remember(state)
        self._last = (state.server_round, state.model.base)

    def _remember(self, state: RoundState) -> None:
        index = state.sketch_index
        if not self.recent_rounds or index is None or state.deltas is None:
            return
        assert state.model is not None
        t = state.server_round
        self._recent = [u for u in self._recent if t - u.server_round < self.recent_rounds]
        for c in state.candidates:
            sketch = state.deltas[c.row][index].copy()
            self._recent.append(RecentUpdate(t, c.node, sketch, c.pseudonym))
        previous = self.previous_base(t)
        if previous is not None and previous.shape == state.model.base.shape:
            step = (state.model.base[index] - previous[index]).astype(np.float32)
            self._recent.append(RecentUpdate(t - 1, -1, step))


class ScreeningStrategy(PipelineStrategy):
    """Screen every training reply before the inner strategy sees it (intake included).

    Parameters
    ----------
    inner : Strategy
        Any Flower strategy; it receives only the accepted replies, untouched.
    screening : Screening, optional
        Checks and thresholds; the defaults suit small CNNs on non-IID data.
    intake : IntakeSettings, optional
        Record keys and claim bound (defaults read from ``inner``).
    verify : Verify, optional
        Also verify signatures first (what an app that screens but does not pay wants: every
        rejection is then attributed to the pseudonym that signed the reply).
    bound : NormBound, optional
        How the survivors are brought to the round's median norm before the inner strategy
        aggregates them (default: normalized).
    """

    def __init__(
        self,
        inner: Strategy,
        screening: Screening | None = None,
        intake: IntakeSettings | None = None,
        verify: Verify | None = None,
        *,
        bound: NormBound | None = None,
    ) -> None:
        super().__init__(inner, intake)
        self.screening = screening or Screening()
        self.screen = Screen(self.screening)
        self.bound = Bound(bound or NormBound(), self.intake.settings.array_key)
        self.history = ScreeningHistory.of(self.screening)
        self.verify = verify

    def prepare(
        self, messages: list[Message], server_round: int, kind: str, grid: Grid
    ) -> list[Message]:
        if self.verify is None:
            return messages
        return self.verify.attach(messages, server_round, kind, grid)

    def authenticate(self, state: RoundState) -> RoundState:
        return state if self.verify is None else self.verify(state)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        state = self.received(server_round, MessageType.TRAIN, replies, memory=self.history.memory)
        state = self.authenticate(state)
        state = self.intake(state)
        state = self.screen(state)
        state = self.bound(state)
        arrays, metrics = self.aggregate_inner(state)
        arrays = self.bound.noised(state, arrays)
        self.history.record(state)
        return arrays, self.record(state, metrics)

    def summary(self) -> None:
        s = self.screening
        active = ", ".join(c.name for c in s.checks if c.active)
        log(
            INFO,
            "\t├── ScreeningStrategy: verify=%s, enabled=%s, min_peers=%d, watch_rounds=%d, "
            "checks: %s",
            self.verify is not None,
            s.enabled,
            s.min_peers,
            s.watch_rounds,
            active,
        )
        self.inner.summary()


def screen_replies(
    replies: Iterable[Message],
    global_arrays: ArrayRecord,
    screening: Screening | None = None,
    intake: IntakeSettings | None = None,
    *,
    previous_base: np.ndarray | None = None,
    watched: frozenset[int] = frozenset(),
    server_round: int = 1,
) -> RoundState:
    """Intake and screening of one round's train replies, outside a strategy.

    What benchmarks and unit tests of checks use; the wrappers run the same two stages.

    Parameters
    ----------
    replies : iterable of Message
        The round's replies.
    global_arrays : ArrayRecord
        The model the round started from.
    screening : Screening, optional
        Checks (defaults if None).
    intake : IntakeSettings, optional
        Record keys and claim bound (defaults if None).
    previous_base : numpy.ndarray, optional
        The previous round's global model, flat float32 (for the global-step checks).
    watched : frozenset of int
        Nodes under watch.
    server_round : int
        The round number.
    """
    from strategies.intake import Intake

    screening = screening or Screening()
    model = ModelReference(global_arrays)
    state = RoundState.received(
        server_round,
        MessageType.TRAIN,
        model,
        replies,
        previous_base=previous_base,
        watched=watched,
        sketch_index=ScreeningHistory.of(screening).sketch_index(model.size),
    )
    state = Intake(intake or IntakeSettings())(state)
    return Screen(screening)(state)
