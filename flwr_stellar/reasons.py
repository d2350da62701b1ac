"""The one vocabulary of rejection reasons, for verification and screening alike.

Logs, the ``rejected_<reason>`` metrics and the ``rejections`` of round manifests all use these
strings, so an operator reading a log, a researcher reading metrics.json and an auditor reading a
manifest see the same word for the same decision. The strings are part of the manifest format:
never rename one, only add.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from flwr.app import MetricRecord


class Reason(StrEnum):
    """Why a reply did not reach the inner strategy."""

    # verification (strategies.verified, flwr_stellar.protocol.signature)
    ERROR_REPLY = "error-reply"
    UNEXPECTED_REPLY = "unexpected-reply"  # no instruction of this round and type was sent
    MISSING_SIGNATURE = "missing-signature"
    UNKNOWN_VERSION = "unknown-version"
    MALFORMED_SIGNATURE = "malformed-signature"
    WRONG_RUN = "wrong-run"
    WRONG_ROUND = "wrong-round"
    WRONG_NONCE = "wrong-nonce"
    WRONG_INSTRUCTION = "wrong-instruction"
    WRONG_MESSAGE_TYPE = "wrong-message-type"
    WRONG_TERMS = "wrong-terms"  # signed under other terms than the run's
    BAD_SIGNATURE = "bad-signature"
    DUPLICATE_PSEUDONYM = "duplicate-pseudonym"
    PSEUDONYM_CHANGED = "pseudonym-changed"  # the node signed with another one earlier this run
    # intake and screening (strategies.intake, strategies.screening)
    MALFORMED = "malformed-content"  # not exactly one ArrayRecord + one MetricRecord
    NUM_EXAMPLES = "implausible-num-examples"
    STRUCTURE = "structure-mismatch"  # names, shapes or dtypes differ from the global model
    NON_FINITE = "non-finite"
    NORM = "norm-too-large"  # absolute bound
    NORM_OUTLIER = "norm-outlier"  # relative to the round's median norm
    COSINE = "cosine-too-low"  # direction disagrees with the median update
    FREE_RIDER = "free-rider"  # (almost) no change to the global model
    DUPLICATE_UPDATE = "duplicate-update"  # bit-identical to another reply this round
    HURTS_VALIDATION = "hurts-validation"  # at its share, it makes the server's model worse
    CLAIM_EXCEEDS_WORK = "claim-exceeds-work"  # moved far less than its example count implies
    REPLAYED_GLOBAL_STEP = "replayed-global-step"  # the last global step sent back as its own
    REVERSES_GLOBAL_STEP = "reverses-global-step"  # points back the way training came
    COPIED_UPDATE = "copied-update"  # near-parallel to another's update, now or in recent rounds
    CLAIM_OUTLIER = "claim-outlier"  # claims far more examples than the round's median
    CLUSTER_OUTLIER = "cluster-outlier"  # outside the majority cluster of update directions
    OVERSHOOTS = "overshoots-validation"  # alone at the round's length, wrecks the server's model
    # intake (strategies.intake)
    MALFORMED_ARRAY = "malformed-array"  # bytes that do not back the declared dtype and shape
    MALFORMED_METRICS = "malformed-metrics"  # a metric that is not a number, or keys not declared


@dataclass(frozen=True)
class Rejected:
    """One reply kept away from the inner strategy: which node, why, and the particulars."""

    node: int
    reason: str  # a Reason, or the reason string of an app's own screening check
    detail: str = ""
    pseudonym: str = ""  # known once the signature verified


def reason_counts(rejected: Iterable[Rejected]) -> dict[str, int]:
    """``rejected_<reason>`` counters, the form the wrappers add to a round's metrics."""
    return {f"rejected_{r}": n for r, n in Counter(str(x.reason) for x in rejected).items()}


@dataclass
class RoundVerdicts:
    """What the wrappers decided for one round and message type.

    Parameters
    ----------
    accepted : dict[int, str]
        Node id -> pseudonym ("" where no signature was checked) of replies that reached the
        inner strategy.
    rejected : list[Rejected]
        Everything kept away from it, with reasons.
    """

    accepted: dict[int, str] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)

    def reject(self, node: int, reason: str, detail: str = "") -> None:
        """Move a node from accepted (if there) to rejected, keeping its pseudonym."""
        pseudonym = self.accepted.pop(node, "")
        self.rejected.append(Rejected(node, reason, detail, pseudonym))


def merge_counts(
    metrics: MetricRecord | None, accepted: int, rejected: Iterable[Rejected]
) -> MetricRecord:
    """Add a wrapper's counts to the round metrics coming up from its inner strategy.

    ``replies_accepted`` is what reached the innermost strategy, so an outer wrapper keeps the
    inner one's figure; ``replies_rejected`` and ``rejected_<reason>`` add up across wrappers.
    """
    rejected = list(rejected)
    out = MetricRecord(dict(metrics.items()) if metrics is not None else {})
    if "replies_accepted" not in out:
        out["replies_accepted"] = accepted
    out["replies_rejected"] = _int(out.get("replies_rejected")) + len(rejected)
    for key, n in reason_counts(rejected).items():
        out[key] = _int(out.get(key)) + n
    return out


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) else 0


# Rejections that say the reply was not authentic or not asked for: they tell nothing about the
# node's data, so screening history does not watch a node for them.
VERIFICATION_REASONS: frozenset[str] = frozenset(
    {
        Reason.ERROR_REPLY,
        Reason.UNEXPECTED_REPLY,
        Reason.MISSING_SIGNATURE,
        Reason.UNKNOWN_VERSION,
        Reason.MALFORMED_SIGNATURE,
        Reason.WRONG_RUN,
        Reason.WRONG_ROUND,
        Reason.WRONG_NONCE,
        Reason.WRONG_INSTRUCTION,
        Reason.WRONG_MESSAGE_TYPE,
        Reason.BAD_SIGNATURE,
        Reason.DUPLICATE_PSEUDONYM,
    }
)
