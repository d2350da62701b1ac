"""``duplicate-update``: the same update bytes from two nodes of one round."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from flwr_stellar.reasons import Reason
from strategies.screening.base import Check, Cohort


@dataclass(frozen=True)
class IdenticalCopies(Check):
    """Reject every reply whose decoded update is identical to another's this round.

    Two honest nodes never produce the same values; colluders that send one crafted update
    from several pseudonyms do. All copies go, since there is no telling which is the original.
    Compared on the decoded rows, not the bytes (a re-encoded header does not hide a copy):
    only rows of exactly equal norm are hashed and compared, so this costs next to nothing.
    """

    name = "identical_copies"
    reason = Reason.DUPLICATE_UPDATE

    def judge(self, cohort: Cohort) -> Sequence[str | None]:
        by_norm: dict[float, list[int]] = defaultdict(list)
        for i, norm in enumerate(cohort.norms):
            by_norm[float(norm)].append(i)
        copies: set[int] = set()
        for members in by_norm.values():
            if len(members) < 2:
                continue  # a norm nobody else has: no copy (the usual case, and free)
            by_digest: dict[bytes, list[int]] = defaultdict(list)
            for i in members:  # one hash per row of a shared norm, never pairwise compares
                by_digest[hashlib.sha256(cohort.deltas[cohort.rows[i]].tobytes()).digest()].append(
                    i
                )
            copies.update(i for same in by_digest.values() if len(same) > 1 for i in same)
        copy = "identical to another reply's update this round"
        return [copy if i in copies else None for i in range(len(cohort.members))]
