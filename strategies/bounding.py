"""The norm bound: every accepted update at the round's robust length, before aggregation
and before scoring.

A boosted update (``k x u``) moves a FedAvg model ``k`` times as far as ``u`` and, priced by
its effect, earns about ``k`` times as much: an update's length is the one thing a node can
choose for free. So after screening, each surviving update is brought to the median norm of
the *other* survivors (the median: fewer than half of them can move it; of the others: so
that no update's own length enters its own bound):

- ``normalize`` (default): every update is rescaled to exactly that norm, up or down (as
  FLTrust, Cao et al. NDSS 2021, normalises client updates to its reference update). An
  update times any ``k > 0`` then enters the model exactly as the update itself does.
- ``clip``: updates longer than that norm are shortened to it, shorter ones are left as they
  are (as FLAME, Nguyen et al. USENIX Security 2022, and Flower's fixed clipping do). Boosting
  above the median gains nothing; an update below it can still be scaled up to it.
- ``off``: updates are aggregated as sent.

A node's length still moves the *others'* bounds by at most one rank of the round's norms
(it is one of their "others"); with the ``normalize`` default the scorers that price
directions (``gradient-similarity``, ``first-order``) pay exactly the same shares for ``k x u``
as for ``u``. Rounds of fewer than three updates share one bound, the median of all.

The inner strategy receives the bounded updates (the replies' arrays are rebuilt where the
scale is not 1); manifests keep citing the hash of what the node signed, and record the
scale each contribution was applied at.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from flwr.app import Array, ArrayRecord

from strategies.round import Candidate, RoundState
from strategies.vectors import unflatten

__all__ = ["BOUND_MODES", "Bound", "NormBound", "others_medians"]

BOUND_MODES = ("normalize", "clip", "off")
UNCHANGED = 1e-6  # a scale this close to 1 leaves the reply as sent


@dataclass(frozen=True)
class NormBound:
    """How accepted updates are bounded to the round's median norm.

    Parameters
    ----------
    mode : str (default: "normalize")
        ``normalize``, ``clip`` or ``off`` (see the module docstring).
    noise : float (default: 0.0)
        FLAME's adaptive noise: Gaussian noise of ``noise`` x the round's median norm per
        parameter is added to the round's new model (FLAME uses 0.001 for image
        classification; 0 adds none). It blurs what a few updates wrote into the model.
    """

    mode: str = "normalize"
    noise: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in BOUND_MODES:
            raise ValueError(f"NormBound.mode must be one of {BOUND_MODES}, got {self.mode!r}")
        if not 0 <= self.noise < 1:
            raise ValueError(f"NormBound.noise must be in [0, 1), got {self.noise!r}")

    def scale(self, norm: float, median: float) -> float:
        """The factor an update of ``norm`` is applied at, in a round of ``median``."""
        if self.mode == "off" or norm <= 0 or median <= 0:
            return 1.0
        if self.mode == "clip":
            return min(1.0, median / norm)
        return median / norm


def others_medians(norms: np.ndarray) -> list[float]:
    """Per update, the median norm of the others (of all, in rounds of fewer than three)."""
    n = len(norms)
    if n < 3:
        return [float(np.median(norms))] * n
    order = np.sort(norms)
    out = []
    for value in norms:
        at = int(np.searchsorted(order, value))  # drop one copy of this value
        others = np.delete(order, at)
        out.append(float(np.median(others)))
    return out


class Bound:
    """The bounding stage: each candidate's scale, and its reply rebuilt at that scale.

    Parameters
    ----------
    settings : NormBound
        The mode.
    array_key : str
        The reply's ArrayRecord name (intake's ``array_key``).
    """

    def __init__(self, settings: NormBound, array_key: str) -> None:
        self.settings = settings
        self.array_key = array_key

    def __call__(self, state: RoundState) -> RoundState:
        if (
            self.settings.mode == "off"
            or not state.is_train
            or not state.candidates
            or state.model is None
            or state.deltas is None
            or state.norms is None
        ):
            return state
        norms = state.norms[[c.row for c in state.candidates]].astype(np.float64)
        if not np.all(np.isfinite(norms)):
            return state
        bounded = tuple(
            self._at(state, c, self.settings.scale(float(n), median))
            for c, n, median in zip(state.candidates, norms, others_medians(norms), strict=True)
        )
        return replace(state, candidates=bounded)

    def noised(self, state: RoundState, arrays: ArrayRecord | None) -> ArrayRecord | None:
        """The round's new model with the adaptive noise added (unchanged without noise)."""
        if not self.settings.noise or arrays is None or not state.candidates:
            return arrays
        assert state.norms is not None
        median = float(np.median(state.norms[[c.row for c in state.candidates]]))
        rng = np.random.default_rng()  # OS entropy: no node can predict it
        out = ArrayRecord()
        for key, array in arrays.items():
            value = array.numpy()
            if value.dtype.kind == "f":
                spread = self.settings.noise * median
                value = (value + rng.normal(0.0, spread, value.shape)).astype(value.dtype)
            out[key] = Array(value)
        return out

    def _at(self, state: RoundState, candidate: Candidate, scale: float) -> Candidate:
        if abs(scale - 1.0) <= UNCHANGED:
            return candidate
        assert state.model is not None and state.deltas is not None
        model = state.model
        flat = model.base + np.float32(scale) * state.deltas[candidate.row]
        arrays: ArrayRecord = unflatten(model.record, flat)
        candidate.reply.content[self.array_key] = arrays
        return replace(candidate, scale=scale)
