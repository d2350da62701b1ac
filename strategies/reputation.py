"""Reputation: a node's pay weight follows its history in the run, trust earned slowly and
lost fast.

A round's scores price what each update did in that round alone. A node that misbehaves in
some rounds and not in others (on-off), or slips past screening now and then, would be paid in
full for every round it got through. So the weigh stage multiplies each score by the node's
trust ``r`` in [0, 1] before the budget is split:

- a node's first round starts at ``initial``;
- a round it is paid in (or accepted in a round that paid nobody) earns ``r += gain x (1 - r)``;
- a round it is rejected in by screening or intake (not for a failed signature, which says
  nothing about its data), or accepted but found worth nothing while others were worth
  something, costs ``r *= keep``.

With the defaults a node needs 3 good rounds to recover from one bad one, and 3 bad rounds take
it from full trust to under 2 %. Relative shares among nodes that always behave stay as the
scorer set them (they all carry the same trust). Manifests record the trust each contribution
was weighed with (``reputation_ppm``, millionths) next to its score, which is exactly the
scorer's integer weight times ``reputation_ppm`` (so an auditor recomputes it without rounding;
with reputation disabled every trust is 10**6).

Trust alone cannot take back what a node was paid before it turned: a node honest for its
first rounds is priced like any honest node in them. So a share ``holdback`` of every round's
budget is not paid in that round but held (each contribution's held stroops are in its
manifest), and released in the run's last round, split by each pseudonym's held amount times
its trust at the end of the run: a node that turned forfeits what it farmed to those that did
not. A run that never reaches its last round (the ServerApp died and was not resumed) never
releases; the distributor keeps the held coins, and the manifests say how much was held.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from flwr_stellar.reasons import VERIFICATION_REASONS
from strategies.round import RoundState

__all__ = ["PPM", "Reputation", "ReputationBook", "Weigh"]

PPM = 1_000_000


@dataclass(frozen=True)
class Reputation:
    """Trust dynamics.

    Parameters
    ----------
    enabled : bool (default: True)
        False pays every score at full weight.
    initial : float (default: 0.5)
        A new node's trust, in (0, 1].
    gain : float (default: 0.3)
        Share of the way to full trust a good round earns, in [0, 1].
    keep : float (default: 0.25)
        Share of its trust a bad round leaves, in [0, 1].
    holdback : float (default: 0.5)
        Share of each round's budget held until the run's last round, in [0, 1) (0: pay
        everything at once).
    """

    enabled: bool = True
    initial: float = 0.5
    gain: float = 0.3
    keep: float = 0.25
    holdback: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.initial <= 1:
            raise ValueError(f"Reputation.initial must be in (0, 1], got {self.initial!r}")
        for name in ("gain", "keep"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"Reputation.{name} must be in [0, 1], got {value!r}")
        if not 0 <= self.holdback < 1:
            raise ValueError(f"Reputation.holdback must be in [0, 1), got {self.holdback!r}")

    def held_of(self, budget: int) -> int:
        """The stroops of a round's ``budget`` held back until the last round."""
        return int(budget * self.holdback) if self.enabled else 0


class ReputationBook:
    """Every node's trust in the run, updated from each finished round.

    Parameters
    ----------
    settings : Reputation
        The dynamics.
    """

    def __init__(self, settings: Reputation) -> None:
        self.settings = settings
        self.trust: dict[int, float] = {}

    def of(self, node: int) -> float:
        """The node's trust now (``initial`` for a node not seen yet)."""
        return self.trust.get(node, self.settings.initial)

    def snapshot(self) -> Mapping[int, float]:
        """The trust of every node seen so far (what a round starts with)."""
        return dict(self.trust)

    def record(self, state: RoundState) -> None:
        """Learn from a finished, scored training round."""
        if not self.settings.enabled or not state.is_train:
            return
        s = self.settings
        anyone_paid = any(state.scores.values())
        for c in state.candidates:
            r = self.of(c.node)
            good = state.scores.get(c.pseudonym, 0) > 0 or not anyone_paid
            self.trust[c.node] = r + s.gain * (1 - r) if good else r * s.keep
        for rejected in state.rejected:
            if rejected.reason not in VERIFICATION_REASONS:
                self.trust[rejected.node] = self.of(rejected.node) * s.keep


class Weigh:
    """The weigh stage: each score times its node's trust (as of the round's start), in
    millionths.

    Parameters
    ----------
    settings : Reputation
        Disabled: every trust is 1 (10**6 millionths).
    """

    def __init__(self, settings: Reputation) -> None:
        self.settings = settings

    def trust_ppm(self, state: RoundState, node: int) -> int:
        """The trust a node's score is weighed with, in millionths."""
        if not self.settings.enabled:
            return PPM
        return round(PPM * state.reputation.get(node, self.settings.initial))

    def __call__(self, state: RoundState) -> RoundState:
        if not state.candidates:
            return state
        weighed = {
            c.pseudonym: state.scores.get(c.pseudonym, 0) * self.trust_ppm(state, c.node)
            for c in state.candidates
        }
        return replace(state, scores=weighed)
