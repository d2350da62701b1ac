"""Screening: checks that keep broken or hostile updates away from the inner strategy.

One check a module, each a small class that owns its settings and rejects with exactly one
reason (:mod:`strategies.screening.base` says what a check is). ``CHECKS`` in
:mod:`strategies.screening.stage` registers them in the order they run; :class:`Screen` is
the pipeline stage and :class:`ScreeningStrategy` the one-stage wrapper.

Cost: intake decodes every update once, as float32, into one (replies x parameters) matrix of
deltas; norms, the median update and cosines are computed on that matrix, never on copies.
"""

from strategies.screening.base import Check, Cohort, ReplyCheck
from strategies.screening.centre_cosine import CentreCosine
from strategies.screening.claim_exceeds_work import ClaimExceedsWork
from strategies.screening.copies import IdenticalCopies
from strategies.screening.hurts_validation import HurtsValidation
from strategies.screening.max_norm import MaxNorm
from strategies.screening.median import MEDIAN_BLOCK, coordinate_median
from strategies.screening.norm_outlier import NormOutlier
from strategies.screening.relative_free_rider import RelativeFreeRider
from strategies.screening.replayed_step import ReplayedGlobalStep
from strategies.screening.reversed_step import ReversesGlobalStep
from strategies.screening.stage import (
    CHECKS,
    Screen,
    Screening,
    ScreeningHistory,
    ScreeningStrategy,
    default_checks,
    screen_replies,
)
from strategies.screening.zero_update import ZeroUpdate

__all__ = [
    "CHECKS",
    "MEDIAN_BLOCK",
    "CentreCosine",
    "Check",
    "ClaimExceedsWork",
    "Cohort",
    "HurtsValidation",
    "IdenticalCopies",
    "MaxNorm",
    "NormOutlier",
    "RelativeFreeRider",
    "ReplayedGlobalStep",
    "ReplyCheck",
    "ReversesGlobalStep",
    "Screen",
    "Screening",
    "ScreeningHistory",
    "ScreeningStrategy",
    "ZeroUpdate",
    "coordinate_median",
    "default_checks",
    "screen_replies",
]
