"""``duplicate-update``: the same update bytes from two nodes of one round."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from flwr_stellar.reasons import Reason
from strategies.screening.base import Check, Cohort


@dataclass(frozen=True)
class IdenticalCopies(Check):
    """Reject every reply whose update is bit-identical to another's this round.

    Two honest nodes never produce the same bytes; colluders that send one crafted update
    from several pseudonyms do. All copies go, since there is no telling which is the original.
    """

    name = "identical_copies"
    reason = Reason.DUPLICATE_UPDATE

    def judge(self, cohort: Cohort) -> Sequence[str | None]:
        seen = Counter(c.update_hash for c in cohort.members)
        copy = "bit-identical to another reply this round"
        return [copy if seen[c.update_hash] > 1 else None for c in cohort.members]
