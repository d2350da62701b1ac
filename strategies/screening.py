"""Screening: small checks that keep broken or hostile updates away from the inner strategy.

``ScreeningStrategy`` wraps any strategy and adds this one concern. Each check is a small class
that looks at one reply (``ReplyCheck``) or at the round's surviving replies together
(``RoundCheck``) and passes it or names a reason from the shared vocabulary. They run in the
order of ``REPLY_CHECKS`` then ``ROUND_CHECKS``, so the inner strategy (FedAvg, Krum, ...) only
ever sees well-formed, plausible updates and one malformed reply cannot raise inside it.
Relative checks (norm outlier, free rider, a claim of examples the update's length cannot back,
the last global step sent back, cosine to the coordinate-wise median update) need
``min_peers`` candidates; with fewer they pass.

Cost: every update is flattened once, as float32, straight into one (replies x parameters)
matrix of deltas; norms, the median update and cosines are computed on that matrix.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from logging import INFO, WARNING
from typing import Protocol

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from flwr_stellar.protocol.digest import SIGNATURE_RECORD, array_record_hash
from flwr_stellar.reasons import Reason, RoundVerdicts, merge_counts
from strategies.vectors import flatten, unflatten

__all__ = ["Candidate", "ScreeningSettings", "ScreeningStrategy", "screen"]

WEIGHT_KEY = "num-examples"
DEFAULT_MAX_EXAMPLES = 1_000_000  # a bound on claims when the app gives none


@dataclass(frozen=True)
class ScreeningSettings:
    """Thresholds of the screening checks; 0 (or -1 for cosine) switches a check off.

    Parameters
    ----------
    enabled : bool
        False passes every reply through (verification still applies).
    max_norm : float
        Absolute L2 bound on an update (0 = off).
    norm_factor : float
        Reject norms above this multiple of the round's median norm (0 = off, else >= 1).
    min_cosine : float
        Reject updates whose cosine to the coordinate-wise median update is below this
        (-1 = off). Honest non-IID updates can sit near 0 in early rounds, hence -0.2.
    min_relative_norm : float
        Free rider: an update norm below this fraction of the round's median.
    min_work_ratio : float
        Lazy free rider: an update whose norm is below this fraction of what its claimed
        examples predict is rejected (``claim-exceeds-work``; 0 = off). Local training takes
        one step per batch, so an update's norm grows with the examples behind it; the
        prediction is the round's median norm x min(1, claim / median claim), a linear
        scaling that under-predicts (norms grow slower than linearly in steps), so honest
        nodes with few examples stay clear of it. Measured on the demo (Dirichlet 0.5):
        honest updates sit at 0.80-1.31 of the prediction, a node that trains on a tenth of
        what it claims at 0.16-0.38.
    max_step_cosine : float
        Delta-weights free rider (Fraboni et al. 2021): an update whose cosine to the previous
        round's global step is above this is the global step sent back, not training
        (``replayed-global-step``; 1 = off). Honest updates measured at <= 0.40.
    step_cosine_margin : float
        Sign flipper: an update whose cosine to the previous round's global step is below 0
        and more than this below the round's median cosine points back the way training came
        (``reverses-global-step``; 0 = off; judged only with ``2 x min_peers`` replies).
    max_num_examples : int
        Claims of ``num-examples`` above this are implausible (0 = 1,000,000).
    min_peers : int
        Relative checks need at least this many replies.
    validation_check : bool
        The server's own data as a trust root (in the spirit of FLTrust, Cao et al. 2021):
        apply each surviving update alone at its share of the round (its examples over all
        surviving examples) and reject it when the server's validation utility drops by more
        than ``validation_tolerance`` x the round's median absolute gain
        (``hurts-validation``). Needs a validation callback; costs one evaluation per reply
        plus one.
    watch_rounds : int
        History: a node rejected, or (as the wrapper outside reports) worth nothing, is
        watched for this many rounds after (0 = no history).
    watched_min_cosine : float
        A watched node's update must agree at least this much with the round's robust centre
        (instead of ``min_cosine``): a node that misbehaved before gets no benefit of the doubt.
    validation_tolerance : float
        Relative slack: honest non-IID updates can cost the server's balanced validation set a
        little on their own; a poisoned one costs about as much as an honest one gains.
    """

    enabled: bool = True
    max_norm: float = 0.0
    norm_factor: float = 3.0
    min_cosine: float = -0.2
    min_relative_norm: float = 0.001
    min_work_ratio: float = 0.5
    max_step_cosine: float = 0.95
    step_cosine_margin: float = 0.1
    max_num_examples: int = 0
    min_peers: int = 3
    validation_check: bool = False
    validation_tolerance: float = 0.5
    watch_rounds: int = 3
    watched_min_cosine: float = 0.0

    def __post_init__(self) -> None:
        problems = [
            ("max_norm", self.max_norm >= 0, "must be >= 0 (0 disables)"),
            ("norm_factor", self.norm_factor == 0 or self.norm_factor >= 1, "must be 0 or >= 1"),
            ("min_cosine", -1 <= self.min_cosine <= 1, "must be in [-1, 1]"),
            ("min_relative_norm", 0 <= self.min_relative_norm < 1, "must be in [0, 1)"),
            ("min_work_ratio", 0 <= self.min_work_ratio < 1, "must be in [0, 1)"),
            ("max_step_cosine", 0 < self.max_step_cosine <= 1, "must be in (0, 1]"),
            ("step_cosine_margin", 0 <= self.step_cosine_margin <= 2, "must be in [0, 2]"),
            ("max_num_examples", self.max_num_examples >= 0, "must be >= 0"),
            ("min_peers", self.min_peers >= 2, "must be >= 2"),
            ("validation_tolerance", self.validation_tolerance >= 0, "must be >= 0"),
            ("watch_rounds", self.watch_rounds >= 0, "must be >= 0"),
            ("watched_min_cosine", -1 <= self.watched_min_cosine <= 1, "must be in [-1, 1]"),
        ]
        for name, ok, why in problems:
            if not ok:
                raise ValueError(f"ScreeningSettings.{name} {why}, got {getattr(self, name)!r}")

    @property
    def example_bound(self) -> int:
        return self.max_num_examples or DEFAULT_MAX_EXAMPLES


@dataclass
class Candidate:
    """A reply and what screening learned about it."""

    node: int
    reply: Message
    num_examples: int = 0
    update_hash: str = ""
    arrays: ArrayRecord | None = field(default=None, repr=False)
    metrics: MetricRecord | None = field(default=None, repr=False)
    row: int = -1  # this reply's row in the round's delta matrix


@dataclass
class Screened:
    """The outcome of one round's screening.

    ``base`` and ``deltas`` (the starting model and the replies' updates, flat float32, row
    ``c.row`` for candidate ``c``) are kept for value scorers, which rebuild coalition models
    from them instead of decoding the updates a second time; None when screening was off.
    """

    accepted: list[Candidate]
    rejected: list[tuple[Candidate, Reason, str]]
    base: np.ndarray | None = field(default=None, repr=False)
    deltas: np.ndarray | None = field(default=None, repr=False)


@dataclass
class RoundData:
    """What the checks of one round share: the global model and the deltas."""

    settings: ScreeningSettings
    global_arrays: ArrayRecord
    array_key: str
    base: np.ndarray  # the global model, flat float32
    deltas: np.ndarray  # (replies, parameters) float32, filled by FiniteArrays
    norms: np.ndarray  # per row
    watched: frozenset[int] = frozenset()  # nodes under watch this round (history)
    step_direction: np.ndarray | None = None  # the last round's global step, unit length


Verdict = tuple[Reason, str] | None


class ReplyCheck(Protocol):
    """A check of one reply on its own."""

    def __call__(self, c: Candidate, data: RoundData) -> Verdict: ...


class RoundCheck(Protocol):
    """A check of each reply against the round's other survivors."""

    def __call__(
        self, alive: list[Candidate], data: RoundData
    ) -> list[tuple[Candidate, Verdict]]: ...


# ---------------------------------------------------------------- per-reply checks
class OneArrayOneMetric:
    """Exactly one ArrayRecord (under the inner strategy's key) + one MetricRecord, no extras."""

    reason = Reason.MALFORMED

    def __call__(self, c: Candidate, data: RoundData) -> Verdict:
        if c.reply.has_error():  # possible when no VerifiedStrategy is outside
            return Reason.ERROR_REPLY, f"node replied with error {c.reply.error.code}"
        content = c.reply.content
        arrays, metrics = content.array_records, content.metric_records
        configs = [k for k in content.config_records if k != SIGNATURE_RECORD]
        if len(arrays) != 1 or len(metrics) != 1 or configs:
            return self.reason, (
                f"{len(arrays)} ArrayRecord(s), {len(metrics)} MetricRecord(s), "
                f"extra ConfigRecord(s) {configs}; expected exactly one of each, no extras"
            )
        if data.array_key not in arrays:
            return self.reason, (
                f"ArrayRecord named {next(iter(arrays))!r}, expected {data.array_key!r}"
            )
        c.arrays, c.metrics = arrays[data.array_key], next(iter(metrics.values()))
        return None


class FiniteMetrics:
    reason = Reason.NON_FINITE

    def __call__(self, c: Candidate, data: RoundData) -> Verdict:
        assert c.metrics is not None
        for key, value in c.metrics.items():
            values = value if isinstance(value, list) else [value]
            if not all(np.isfinite(v) for v in values):
                return self.reason, f"metric {key!r} is not finite"
        return None


class PlausibleNumExamples:
    reason = Reason.NUM_EXAMPLES

    def __call__(self, c: Candidate, data: RoundData) -> Verdict:
        assert c.metrics is not None
        n, limit = c.metrics.get(WEIGHT_KEY), data.settings.example_bound
        if not isinstance(n, int | float) or not 1 <= n <= limit or n != int(n):
            return self.reason, f"{WEIGHT_KEY}={n!r}, expected an integer in [1, {limit}]"
        c.num_examples = int(n)
        return None


class SameStructure:
    reason = Reason.STRUCTURE

    def __call__(self, c: Candidate, data: RoundData) -> Verdict:
        assert c.arrays is not None
        reference = data.global_arrays
        if list(c.arrays.keys()) != list(reference.keys()):
            return self.reason, "array names differ from the global model's"
        for key, ref in reference.items():
            got = c.arrays[key]
            if tuple(got.shape) != tuple(ref.shape) or got.dtype != ref.dtype:
                return (
                    self.reason,
                    f"{key}: {got.dtype}{list(got.shape)} != {ref.dtype}{list(ref.shape)}",
                )
        return None


class FiniteArrays:
    """Decodes the update once, into its row of the delta matrix, and checks it is finite."""

    reason = Reason.NON_FINITE

    def __call__(self, c: Candidate, data: RoundData) -> Verdict:
        assert c.arrays is not None
        row = data.deltas[c.row]
        offset = 0
        try:
            for array in c.arrays.values():
                values = array.numpy().ravel()
                row[offset : offset + values.size] = values
                offset += values.size
        except (ValueError, TypeError) as err:
            return Reason.STRUCTURE, f"arrays do not decode: {err}"
        row -= data.base
        if not np.isfinite(row).all():
            return self.reason, f"{int((~np.isfinite(row)).sum())} NaN/inf values"
        data.norms[c.row] = float(np.linalg.norm(row))
        c.update_hash = array_record_hash(c.arrays)
        return None


class MaxNorm:
    reason = Reason.NORM

    def __call__(self, c: Candidate, data: RoundData) -> Verdict:
        bound, norm = data.settings.max_norm, float(data.norms[c.row])
        if bound > 0 and norm > bound:
            return self.reason, f"update norm {norm:.4g} > max_norm {bound:.4g}"
        return None


class NonZeroUpdate:
    reason = Reason.FREE_RIDER

    def __call__(self, c: Candidate, data: RoundData) -> Verdict:
        if data.norms[c.row] == 0.0:
            return self.reason, "update identical to the global model"
        return None


# ---------------------------------------------------------------- round checks
def _metric_shape(c: Candidate) -> tuple[str, tuple[str, ...]]:
    name, record = next(iter(c.reply.content.metric_records.items()))
    return name, tuple(sorted(record.keys()))


class MetricConsensus:
    """Aggregators need every reply's MetricRecord to have the same name and keys: keep the most
    common shape (ties: the smallest), so a deviant reply cannot make them raise."""

    def __call__(self, alive: list[Candidate], data: RoundData) -> list[tuple[Candidate, Verdict]]:
        shapes = Counter(_metric_shape(c) for c in alive)
        usual = min(shapes, key=lambda shape: (-shapes[shape], shape)) if shapes else None
        return [
            (
                c,
                None
                if _metric_shape(c) == usual
                else (Reason.MALFORMED, f"metrics {_metric_shape(c)} != {usual}"),
            )
            for c in alive
        ]


class NoCopies:
    def __call__(self, alive: list[Candidate], data: RoundData) -> list[tuple[Candidate, Verdict]]:
        by_hash: dict[str, int] = defaultdict(int)
        for c in alive:
            by_hash[c.update_hash] += 1
        copy = (Reason.DUPLICATE_UPDATE, "bit-identical to another reply this round")
        return [(c, copy if by_hash[c.update_hash] > 1 else None) for c in alive]


class AlongTheGlobalStep:
    """Updates against the direction training has been going: the server made last round's
    global step, so it can compare each update with it (after the first round).

    - Too close (``replayed-global-step``): a delta-weights free rider sends the last step
      back as its update; it needs no data. Where honest updates themselves follow the last
      step closely (smooth problems, near full-batch training), the bound tightens towards 1
      with the round's median cosine, ``max(max_step_cosine, 1 - (1 - median) / 10)``, so
      only a replay closer to the step than honest training gets is rejected.
    - Backwards (``reverses-global-step``): consecutive gradient steps agree, so honest updates
      have a positive cosine to the last step (demo: 0.02-0.40 over 15 rounds, one -0.02),
      and a sign-flipped update the negative of one. Rejected: cosine below 0 and more than
      ``step_cosine_margin`` below the round's median (after a bad step, when honest updates
      all turn back, the median turns with them and only outliers go). Measured: holding
      watched nodes to no margin caught 44 instead of 27 of 45 sign-flipped updates but also
      rejected honest ones late in training, which once left the attackers a majority of a
      round's survivors; so every node gets the margin. It needs ``2 x min_peers`` survivors:
      the median of a handful of cosines is too noisy to judge by (in 4-node test runs with
      100 examples a node it rejected honest updates).

    It runs after ``RelativeToMedian``, whose medians (norm, centre) must come from a round
    that no relative check has thinned yet: removing honest updates first could hand the
    median to the attackers.
    """

    def __call__(self, alive: list[Candidate], data: RoundData) -> list[tuple[Candidate, Verdict]]:
        direction, s = data.step_direction, data.settings
        if direction is None or len(alive) < s.min_peers:
            return [(c, None) for c in alive]
        cosines = [float(np.dot(data.deltas[c.row], direction)) / data.norms[c.row] for c in alive]
        median = float(np.median(cosines))
        upper = max(s.max_step_cosine, 1 - (1 - median) / 10) if s.max_step_cosine < 1 else 2.0
        judge_reversal = s.step_cosine_margin > 0 and len(alive) >= 2 * s.min_peers
        lower = min(0.0, median - s.step_cosine_margin) if judge_reversal else -2.0
        out: list[tuple[Candidate, Verdict]] = []
        for c, cosine in zip(alive, cosines, strict=True):
            verdict: Verdict = None
            where = f"cosine to the last global step {cosine:.4f}"
            if cosine > upper:
                verdict = (
                    Reason.REPLAYED_GLOBAL_STEP,
                    f"{where} > {upper:.4g} (round median {median:.3f})",
                )
            elif cosine < lower:
                verdict = (
                    Reason.REVERSES_GLOBAL_STEP,
                    f"{where} < {lower:.4g} (round median {median:.3f} - {s.step_cosine_margin:g})",
                )
            out.append((c, verdict))
        return out


SORTING_NETWORK_MAX_ROWS = 24


MEDIAN_BLOCK = 1 << 16  # columns per block, at most ...
MEDIAN_BLOCK_FLOATS = 1 << 22  # ... and rows x columns per block at most 4M floats (16 MB)


def coordinate_median(matrix: np.ndarray, index: Sequence[int] | None = None) -> np.ndarray:
    """Coordinate-wise median of some rows of ``matrix`` (all rows when ``index`` is None).

    ``np.median(rows, axis=0)`` partitions each of the (many) columns separately, which for 10
    updates of 225k parameters costs more than the rest of screening together. For up to
    ``SORTING_NETWORK_MAX_ROWS`` rows an odd-even transposition network sorts every column at
    once with whole-row minimum/maximum operations instead (n^2/2 vector ops). Either way the
    work goes block of columns by block, so the temporaries stay small however many rows and
    parameters there are (the rows are never copied as a whole: the layer's memory stays the
    one delta matrix).
    """
    rows = np.arange(matrix.shape[0]) if index is None else np.asarray(index, dtype=np.intp)
    if len(rows) == 0:
        return np.full(matrix.shape[1], np.nan, np.float32)
    out = np.empty(matrix.shape[1], np.float32)
    width = max(1024, min(MEDIAN_BLOCK, MEDIAN_BLOCK_FLOATS // len(rows)))
    for start in range(0, matrix.shape[1], width):
        block = matrix[rows, start : start + width]  # a copy of this block only
        out[start : start + block.shape[1]] = _block_median(block)
    return out


def _block_median(block: np.ndarray) -> np.ndarray:
    n = block.shape[0]
    if n > SORTING_NETWORK_MAX_ROWS:
        return np.asarray(np.median(block, axis=0))
    r = [block[i] for i in range(n)]
    for step in range(n):
        for j in range(step % 2, n - 1, 2):
            low = np.minimum(r[j], r[j + 1])
            np.maximum(r[j], r[j + 1], out=r[j + 1])
            r[j] = low
    mid = n // 2
    return r[mid] if n % 2 else np.asarray((r[mid - 1] + r[mid]) * np.float32(0.5))


class RelativeToMedian:
    """Norm outliers, relative free riders and direction, against the round's robust centre."""

    def __call__(self, alive: list[Candidate], data: RoundData) -> list[tuple[Candidate, Verdict]]:
        s = data.settings
        if len(alive) < s.min_peers:
            return [(c, None) for c in alive]
        rows = [c.row for c in alive]
        norms = data.norms[rows]
        median_norm = float(np.median(norms))
        median_claim = float(np.median([c.num_examples for c in alive]))
        centre = (
            coordinate_median(data.deltas, rows)
            if s.min_cosine > -1 or s.watched_min_cosine > -1
            else None
        )
        centre_norm = float(np.linalg.norm(centre)) if centre is not None else 0.0
        out: list[tuple[Candidate, Verdict]] = []
        for c, norm in zip(alive, norms, strict=True):
            verdict: Verdict = None
            if s.norm_factor > 0 and norm > s.norm_factor * median_norm:
                verdict = (
                    Reason.NORM_OUTLIER,
                    (
                        f"update norm {norm:.4g} > {s.norm_factor:g} x round median "
                        f"{median_norm:.4g}"
                    ),
                )
            elif norm < s.min_relative_norm * median_norm:
                verdict = (
                    Reason.FREE_RIDER,
                    (
                        f"update norm {norm:.3g} < {s.min_relative_norm:g} x round median "
                        f"{median_norm:.4g}"
                    ),
                )
            elif norm < s.min_work_ratio * (
                predicted := median_norm * min(1.0, c.num_examples / median_claim)
            ):
                verdict = (
                    Reason.CLAIM_EXCEEDS_WORK,
                    (
                        f"update norm {norm:.4g} < {s.min_work_ratio:g} x {predicted:.4g}, the "
                        f"norm {c.num_examples} examples predict (round median {median_norm:.4g} "
                        f"at {median_claim:g} examples)"
                    ),
                )
            elif centre is not None and centre_norm > 0:
                verdict = self._direction(c, data, centre / centre_norm, norm)
            out.append((c, verdict))
        return out

    @staticmethod
    def _direction(c: Candidate, data: RoundData, centre: np.ndarray, norm: float) -> Verdict:
        """Cosine to the robust centre (unit length); a watched node must agree with it."""
        s = data.settings
        cosine = float(np.dot(data.deltas[c.row], centre)) / norm
        watched = c.node in data.watched
        floor = max(s.min_cosine, s.watched_min_cosine) if watched else s.min_cosine
        if cosine >= floor:
            return None
        return Reason.COSINE, f"cosine to the median update {cosine:.3f} < {floor:g}" + (
            " (watched: rejected or worthless in a recent round)" if watched else ""
        )


REPLY_CHECKS: Sequence[ReplyCheck] = (
    OneArrayOneMetric(),
    FiniteMetrics(),
    PlausibleNumExamples(),
    SameStructure(),
    FiniteArrays(),
    MaxNorm(),
    NonZeroUpdate(),
)
ROUND_CHECKS: Sequence[RoundCheck] = (
    MetricConsensus(),
    NoCopies(),
    RelativeToMedian(),
    AlongTheGlobalStep(),
)


def _flat_size(record: ArrayRecord) -> int:
    return sum(int(np.prod(a.shape)) for a in record.values())


def validation_gains(
    alive: list[Candidate], data: RoundData, utility: Callable[[np.ndarray], float]
) -> list[float]:
    """Each update's gain in validation utility when applied alone at its round share."""
    counts = np.asarray([max(1, c.num_examples) for c in alive], np.float64)
    shares = (counts / counts.sum()).astype(np.float32)
    buffer = np.empty_like(data.base)
    start = float(utility(data.base))
    gains = []
    for c, share in zip(alive, shares, strict=True):
        np.copyto(buffer, data.base)
        buffer += share * data.deltas[c.row]
        gains.append(float(utility(buffer)) - start)
    return gains


def _unit_step(base: np.ndarray, previous_base: np.ndarray | None) -> np.ndarray | None:
    """The unit vector from ``previous_base`` to ``base`` (None: no previous model, or no step)."""
    if previous_base is None or previous_base.shape != base.shape:
        return None
    step: np.ndarray = np.subtract(base, previous_base, dtype=np.float32)
    norm = float(np.linalg.norm(step))
    if not np.isfinite(norm) or norm == 0.0:
        return None
    step /= norm
    return step


def screen(
    candidates: list[Candidate],
    global_arrays: ArrayRecord,
    settings: ScreeningSettings,
    array_key: str = "arrays",
    utility: Callable[[np.ndarray], float] | None = None,
    watched: frozenset[int] = frozenset(),
    previous_base: np.ndarray | None = None,
) -> Screened:
    """Split replies into accepted and rejected (with a reason and a detail).

    Parameters
    ----------
    candidates : list[Candidate]
        The round's replies (verified ones, when a VerifiedStrategy is outside).
    global_arrays : ArrayRecord
        The model the round started from: updates are measured against it.
    settings : ScreeningSettings
        Thresholds.
    array_key : str
        Name of the ArrayRecord the inner strategy reads.
    utility : callable, optional
        Flat parameters -> validation utility (higher is better), for
        ``settings.validation_check``.
    watched : frozenset of int
        Nodes with a recent rejection or worthless round: held to ``watched_min_cosine``.
    previous_base : numpy.ndarray, optional
        The previous round's global model (flat float32): with ``global_arrays`` it gives the
        last global step, for ``max_step_cosine``.
    """
    if not settings.enabled:
        for c in candidates:
            metrics = c.reply.content.metric_records
            n = next(iter(metrics.values())).get(WEIGHT_KEY, 0) if len(metrics) == 1 else 0
            c.num_examples = int(n) if isinstance(n, int | float) else 0
            arrays = c.reply.content.array_records
            c.update_hash = array_record_hash(arrays[array_key]) if array_key in arrays else ""
        return Screened(list(candidates), [])
    size = _flat_size(global_arrays)
    base = flatten(global_arrays)
    data = RoundData(
        settings,
        global_arrays,
        array_key,
        base,
        np.empty((len(candidates), size), np.float32),
        np.zeros(len(candidates), np.float64),
        watched,
        _unit_step(base, previous_base),
    )
    rejected: list[tuple[Candidate, Reason, str]] = []
    alive: list[Candidate] = []
    for i, c in enumerate(candidates):
        c.row = i
        verdict = next((v for check in REPLY_CHECKS if (v := check(c, data)) is not None), None)
        if verdict is None:
            alive.append(c)
        else:
            rejected.append((c, *verdict))
    for round_check in ROUND_CHECKS:
        keep: list[Candidate] = []
        for c, verdict in round_check(alive, data):
            if verdict is None:
                keep.append(c)
            else:
                rejected.append((c, *verdict))
        alive = keep
    if settings.validation_check and utility is not None and alive:
        keep = []
        gains = validation_gains(alive, data, utility)
        floor = -settings.validation_tolerance * float(np.median(np.abs(gains)))
        for c, gain in zip(alive, gains, strict=True):
            if gain < floor:
                detail = f"validation utility {gain:+.4g} at its share of the round < {floor:+.4g}"
                rejected.append((c, Reason.HURTS_VALIDATION, detail))
            else:
                keep.append(c)
        alive = keep
    return Screened(alive, rejected, data.base, data.deltas)


class ScreeningStrategy(Strategy):
    """Screen every training reply before the inner strategy sees it.

    Parameters
    ----------
    inner : Strategy
        Any Flower strategy; it receives only the accepted replies, untouched.
    settings : ScreeningSettings, optional
        Thresholds; the defaults suit small CNNs on non-IID data.

    Attributes
    ----------
    verdicts : dict[tuple[int, str], RoundVerdicts]
        Per (round, "train"): accepted nodes and rejections with reasons. A VerifiedStrategy
        outside this one attributes them to pseudonyms.
    screened : dict[int, Screened]
        Per round: the candidates (with ``num_examples`` and ``update_hash``) and rejections,
        for the wrappers outside that score and pay.
    """

    def __init__(
        self,
        inner: Strategy,
        settings: ScreeningSettings | None = None,
        validation: Callable[[ArrayRecord], float] | None = None,
    ) -> None:
        self.inner = inner
        self.settings = settings or ScreeningSettings()
        self.validation = validation
        if self.settings.validation_check and validation is None:
            raise ValueError(
                "ScreeningSettings.validation_check needs a validation callback "
                "(ArrayRecord -> float, higher is better)"
            )
        self.array_key = str(getattr(inner, "arrayrecord_key", "arrays"))
        self._global: dict[int, ArrayRecord] = {}
        self.verdicts: dict[tuple[int, str], RoundVerdicts] = {}
        self.screened: dict[int, Screened] = {}
        self.watch_until: dict[int, int] = {}  # node -> last round it is watched
        self._previous_base: tuple[int, np.ndarray] | None = None  # (round, flat model)

    def watch(self, node: int, server_round: int) -> None:
        """Watch ``node`` for ``settings.watch_rounds`` rounds after ``server_round`` (called
        for rejections here, and by an outer wrapper for contributions worth nothing).

        Parameters
        ----------
        node : int
            Flower node id.
        server_round : int
            The round it misbehaved or contributed nothing in.
        """
        if self.settings.watch_rounds:
            until = server_round + self.settings.watch_rounds
            self.watch_until[node] = max(until, self.watch_until.get(node, 0))

    def watched(self, server_round: int) -> frozenset[int]:
        """Nodes under watch in ``server_round``."""
        return frozenset(n for n, until in self.watch_until.items() if until >= server_round)

    def _base_of(self, server_round: int) -> np.ndarray | None:
        kept = self._previous_base
        return kept[1] if kept is not None and kept[0] == server_round else None

    def global_before(self, server_round: int) -> ArrayRecord | None:
        """The model the round's training started from (until the round is aggregated).

        Parameters
        ----------
        server_round : int
            The round.
        """
        return self._global.get(server_round)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._global[server_round] = arrays
        return self.inner.configure_train(server_round, arrays, config, grid)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.inner.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        before = self._global.pop(server_round, None)
        candidates = [Candidate(r.metadata.src_node_id, r) for r in replies]
        verdicts = RoundVerdicts()
        if before is None:  # no instruction went through us: nothing to measure against
            screened = Screened(
                [], [(c, Reason.UNEXPECTED_REPLY, "no instruction was sent") for c in candidates]
            )
        else:
            utility = None
            if self.validation is not None:
                validation, template = self.validation, before

                def utility(flat: np.ndarray) -> float:
                    return float(validation(unflatten(template, flat)))

            screened = screen(
                candidates,
                before,
                self.settings,
                self.array_key,
                utility,
                self.watched(server_round),
                self._base_of(server_round - 1),
            )
            if screened.base is not None:
                self._previous_base = (server_round, screened.base)
        self.screened[server_round] = screened
        for c in screened.accepted:
            verdicts.accepted[c.node] = ""
        for c, reason, detail in screened.rejected:
            verdicts.reject(c.node, reason, detail)
            self.watch(c.node, server_round)
            log(
                WARNING,
                "round %d: screened out node %s: %s (%s)",
                server_round,
                c.node,
                reason,
                detail,
            )
        self.verdicts[(server_round, MessageType.TRAIN)] = verdicts
        accepted = [c.reply for c in screened.accepted]
        arrays, metrics = (
            self.inner.aggregate_train(server_round, accepted) if accepted else (None, None)
        )
        return arrays, merge_counts(metrics, len(accepted), verdicts.rejected)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return self.inner.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        s = self.settings
        log(
            INFO,
            "\t├── ScreeningStrategy: enabled=%s, max_norm=%g, norm_factor=%g, min_cosine=%g, "
            "min_relative_norm=%g, min_work_ratio=%g, max_step_cosine=%g, "
            "step_cosine_margin=%g, min_peers=%d",
            s.enabled,
            s.max_norm,
            s.norm_factor,
            s.min_cosine,
            s.min_relative_norm,
            s.min_work_ratio,
            s.max_step_cosine,
            s.step_cosine_margin,
            s.min_peers,
        )
        self.inner.summary()
