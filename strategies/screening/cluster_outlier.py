"""``cluster-outlier``: an update outside the majority cluster of the round's directions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flwr_stellar.reasons import Reason
from strategies.screening.base import Check, Cohort


@dataclass(frozen=True)
class ClusterOutlier(Check):
    """FLAME's filtering step (Nguyen et al., USENIX Security 2022): cluster the updates by
    cosine distance with HDBSCAN, the smallest cluster allowed being a majority of the round,
    and reject every update outside the cluster it finds.

    Backdoored updates are trained towards a second objective and so point, together, away
    from the honest majority, while honest updates of non-IID data are spread but dense around
    it. The norm bound (``NormBound``) is FLAME's clipping step, and ``NormBound.noise`` its
    adaptive noise (off by default). What this check buys, and costs honest nodes, is measured
    in docs/rewards.md (the ``after+flame`` rows of the defences table).
    Cosines are taken on the run's sketch coordinates (see ``copied_update``).

    Parameters
    ----------
    enabled : bool (default: False)
        Off unless asked for: on non-IID data it rejects honest updates too (docs/rewards.md).
    min_samples : int (default: 1)
        HDBSCAN's ``min_samples`` (FLAME uses 1), >= 1.
    """

    name = "cluster_outlier"
    uses_sketches = True
    reason = Reason.CLUSTER_OUTLIER
    enabled: bool = False
    min_samples: int = 1

    def __post_init__(self) -> None:
        if self.min_samples < 1:
            raise ValueError(f"ClusterOutlier.min_samples must be >= 1, got {self.min_samples!r}")

    @property
    def active(self) -> bool:
        return self.enabled

    def judge(self, cohort: Cohort) -> Sequence[str | None]:
        sketches = cohort.sketches
        n = len(cohort.members)
        if sketches is None or not cohort.enough_peers:
            return [None] * n
        labels = majority_cluster(sketches, self.min_samples)
        return [
            None if inside else "outside the majority cluster of update directions"
            for inside in labels
        ]


def majority_cluster(rows: np.ndarray, min_samples: int = 1) -> list[bool]:
    """Which rows HDBSCAN puts in its largest cluster, clusters being at least a majority of
    the rows, on cosine distances (all True when it finds no cluster at all)."""
    from sklearn.cluster import HDBSCAN

    n = len(rows)
    norms = np.linalg.norm(rows, axis=1, keepdims=True).astype(np.float64)
    unit = rows.astype(np.float64) / np.maximum(norms, np.finfo(np.float64).tiny)
    distances = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)
    np.fill_diagonal(distances, 0.0)
    labels = HDBSCAN(
        min_cluster_size=n // 2 + 1,
        min_samples=min_samples,
        metric="precomputed",
        allow_single_cluster=True,
        copy=True,
    ).fit_predict(distances)
    found = labels[labels >= 0]
    if not found.size:
        return [True] * n
    largest = int(np.bincount(found).argmax())
    return [int(label) == largest for label in labels]
